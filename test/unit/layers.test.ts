/**
 * The layering of src/ (docs/architecture.md), checked on the sources: shared nouns at the
 * bottom, then net/store/auth/output, then tunnel/listen, then cli on top. A file may import
 * its own layer and the ones below, never above; listen/ and tunnel/ stay apart except that
 * tunnel/ drives listeners; nothing below cli/ reads argv or env from the process, or exits it.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot } from '../helpers/fixtures.js';

const SRC = join(repoRoot, 'src');

/** The layer of a file under src/, by its top folder (or name, for the leaf files). */
const LAYER: Record<string, number> = {
  'target.ts': 0,
  'errors.ts': 0,
  'external.ts': 0,
  net: 1,
  store: 1,
  auth: 1,
  output: 1,
  tunnel: 2,
  listen: 2,
  diagnose: 2,
  cli: 3,
};

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? sources(path) : entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** `net`, `target.ts`, …: what decides a src file's layer. */
const unit = (path: string) => relative(SRC, path).split('/')[0]!;

/** The src files a file imports (static, re-exported, type-only and dynamic), as absolute .ts paths. */
function importsOf(path: string): string[] {
  const code = readFileSync(path, 'utf8');
  const specifiers = [...code.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*)'(\.{1,2}\/[^']+)'/g)].map((m) => m[1]!);
  return specifiers.map((s) => resolve(dirname(path), s).replace(/\.js$/, '.ts'));
}

const files = sources(SRC);

describe('layers of src/', () => {
  it('knows every file', () => {
    assert.ok(files.length > 40, `found ${files.length} source files`);
    for (const file of files) assert.ok(unit(file) in LAYER, `${relative(SRC, file)} belongs to no layer: add it to docs/architecture.md and this table`);
  });

  it('imports only its own layer and the ones below', () => {
    const wrong: string[] = [];
    for (const file of files) {
      for (const target of importsOf(file)) {
        if (!target.startsWith(SRC)) continue;
        if (LAYER[unit(target)]! > LAYER[unit(file)]!) wrong.push(`${relative(SRC, file)} -> ${relative(SRC, target)}`);
      }
    }
    assert.deepEqual(wrong, []);
  });

  it('no file under tunnel, auth, net, listen, store or output imports from cli; listen imports nothing from tunnel', () => {
    const wrong: string[] = [];
    for (const file of files) {
      const from = unit(file);
      for (const target of importsOf(file)) {
        const to = unit(target);
        if ((from !== 'cli' && to === 'cli') || (from === 'listen' && to === 'tunnel')) wrong.push(`${relative(SRC, file)} -> ${relative(SRC, target)}`);
      }
    }
    assert.deepEqual(wrong, []);
  });

  it('target.ts, the shared nouns, imports nothing of burrow', () => {
    assert.deepEqual(importsOf(join(SRC, 'target.ts')), []);
  });

  it('nothing below cli reads process.argv or process.env, writes the standard streams or exits', () => {
    const wrong: string[] = [];
    for (const file of files) {
      if (unit(file) === 'cli') continue;
      // Comments may speak of them; code may not use them.
      const code = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
      const use = /process\.(argv|env|exit|stdin|stdout|stderr)\b/.exec(code);
      if (use) wrong.push(`${relative(SRC, file)}: ${use[0]}`);
    }
    assert.deepEqual(wrong, []);
  });
});
