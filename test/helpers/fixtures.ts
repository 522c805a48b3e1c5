import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Walks up from `start` to the first directory holding a package.json. This works both from
 * the sources (test/helpers/) and from the compiled output (dist/test/helpers/), because dist/
 * has no package.json of its own.
 */
function findRepoRoot(start: string): string {
  let dir = start;
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json found above ${start}`);
    dir = parent;
  }
}

/** Absolute path of the repository root (the directory with package.json). */
export const repoRoot = findRepoRoot(dirname(fileURLToPath(import.meta.url)));

const fixturesDir = join(repoRoot, 'test', 'fixtures');

/** Absolute path of `test/fixtures/<name>`, e.g. `fixture('ca.pem')`. */
export function fixture(name: string): string {
  return join(fixturesDir, name);
}

/** Contents of `test/fixtures/<name>` as UTF-8 text (the fixtures are PEM files). */
export function readFixture(name: string): string {
  return readFileSync(fixture(name), 'utf8');
}
