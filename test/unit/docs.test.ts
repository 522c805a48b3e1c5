/**
 * The documentation, checked on the files: docs/cli.md is what scripts/gen-cli-docs.mjs makes of
 * the current flag and command definitions; every relative link (and #anchor, by GitHub's slug
 * rules) in README.md, CONTRIBUTING.md, docs/*.md and bench/README.md resolves; the README stays
 * a short front door whose test command is the one CI runs; and no page speaks of how the work
 * was organised.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '../helpers/fixtures.js';

const PAGES = [
  'README.md',
  'CONTRIBUTING.md',
  'bench/README.md',
  ...readdirSync(join(repoRoot, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => `docs/${name}`),
];

const read = (path: string) => readFileSync(join(repoRoot, path), 'utf8');

/** The lines of `markdown` outside fenced code blocks. */
function prose(markdown: string): string[] {
  let fenced = false;
  return markdown.split('\n').filter((line) => {
    if (/^\s*(```|~~~)/.test(line)) {
      fenced = !fenced;
      return false;
    }
    return !fenced;
  });
}

/** GitHub's anchor for a heading: its text lowercased, punctuation dropped, spaces to hyphens. */
export function slug(heading: string): string {
  const plain = heading
    .replace(/`([^`]*)`/g, '$1')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]+>/g, '')
    .trim()
    .toLowerCase();
  return plain.replace(/[^\p{L}\p{N}\p{M}\s_-]/gu, '').replace(/ /g, '-');
}

/** Every anchor the headings of `markdown` make, repeated headings numbered as GitHub does. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const line of prose(markdown)) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const base = slug(heading);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** The targets of the Markdown links and images in `markdown`, outside code. */
function links(markdown: string): string[] {
  const targets: string[] = [];
  for (const line of prose(markdown)) {
    const text = line.replace(/`[^`]*`/g, '');
    for (const match of text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) targets.push(match[1]!);
    const reference = /^\s{0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?/.exec(line)?.[1];
    if (reference !== undefined) targets.push(reference);
  }
  return targets;
}

describe('docs', () => {
  it('slugs headings as GitHub does', () => {
    assert.equal(slug('Is this machine signed in? (`status`)'), 'is-this-machine-signed-in-status');
    assert.equal(
      slug('Long-lived sessions: `--max-duration` and `--close-on-token-expiry`'),
      'long-lived-sessions---max-duration-and---close-on-token-expiry',
    );
    assert.equal(slug('What burrow says: events and `--json`'), 'what-burrow-says-events-and---json');
  });

  it('docs/cli.md is generated from the current flag and command definitions (npm run docs:cli)', async () => {
    const script = pathToFileURL(join(repoRoot, 'scripts', 'gen-cli-docs.mjs')).href;
    const { renderCliDoc } = (await import(script)) as { renderCliDoc: () => Promise<string> };
    const fresh = await renderCliDoc();
    assert.equal(read('docs/cli.md'), fresh, 'docs/cli.md is stale: run "npm run docs:cli"');
    // Every flag of the table, for every command that takes it, is in the reference.
    const { FLAGS } = await import('../../src/cli/flags.js');
    for (const entry of FLAGS) {
      for (const command of entry.commands) {
        const section = fresh.split(`\n## burrow ${command}\n`)[1]?.split('\n## ')[0];
        assert.ok(section, `no section for burrow ${command}`);
        assert.ok(section.includes(`| \`${entry.flags}\` |`), `${entry.flags} missing under burrow ${command}`);
      }
    }
  });

  it('every relative link and #anchor resolves', () => {
    const broken: string[] = [];
    for (const page of PAGES) {
      for (const target of links(read(page))) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
        const [path = '', anchor] = target.split('#', 2);
        const file = path === '' ? join(repoRoot, page) : resolve(dirname(join(repoRoot, page)), decodeURIComponent(path));
        if (!existsSync(file)) {
          broken.push(`${page}: ${target} (no such file)`);
          continue;
        }
        if (anchor === undefined) continue;
        if (!statSync(file).isFile() || !file.endsWith('.md')) {
          broken.push(`${page}: ${target} (an anchor into something that is not Markdown)`);
          continue;
        }
        if (!anchors(readFileSync(file, 'utf8')).has(anchor)) broken.push(`${page}: ${target} (no heading ${relative(repoRoot, file)}#${anchor})`);
      }
    }
    assert.deepEqual(broken, []);
  });

  it('the README is a front door with the quick start CI runs', () => {
    const readme = read('README.md');
    assert.ok(readme.split('\n').length <= 300, `README.md has ${readme.split('\n').length} lines`);
    const ci = read('.ci/run');
    const command = ci
      .split('\n')
      .filter((line) => line.trim() !== '' && !line.trim().startsWith('#'))
      .at(-1)!
      .trim();
    assert.equal(command, 'npm ci && npm test');
    assert.match(readme, /^npm ci && npm test {2,}#/m, 'the README\'s test command is the one .ci/run runs');
    assert.match(readme, /^npm ci && npm run demo {2,}#/m);
    assert.match(readme, /^npm i -g burrow-tunnel\b/m);
    for (const link of ['docs/cli.md', 'docs/errors.md', 'docs/json-events.md', 'docs/troubleshooting.md', 'CONTRIBUTING.md']) {
      assert.ok(readme.includes(`](${link})`), `README links ${link}`);
    }
  });

  it('every exit code of errors.ts is in the README and in docs/errors.md', async () => {
    const { ExitCode } = await import('../../src/errors.js');
    const codes = new Set<number>(Object.values(ExitCode));
    const readme = read('README.md');
    const errors = read('docs/errors.md');
    for (const code of codes) {
      assert.match(readme, new RegExp(`^\\| ${code} \\|`, 'm'), `exit ${code} in the README's table`);
      assert.match(errors, new RegExp(`^\\| ${code} \\|`, 'm'), `exit ${code} in docs/errors.md`);
    }
    const union = /export type ErrorCode =([^;]*);/.exec(read('src/errors.ts'))?.[1] ?? '';
    const names = [...union.matchAll(/'(BURROW_[A-Z_]+)'/g)].map((m) => m[1]!);
    assert.ok(names.length > 20, 'the ErrorCode union was found');
    for (const name of names) assert.ok(errors.includes(`\`${name}\``), `${name} in docs/errors.md`);
  });

  it('no page speaks of how the work was organised', () => {
    for (const page of PAGES) {
      const text = read(page);
      for (const pattern of [/\bissue \d/i, /\bitem \d/i, /\bthis session\b/i, /\bthe lead'?s?\b/i]) {
        assert.doesNotMatch(text, pattern, `${page} matches ${pattern}`);
      }
    }
  });
});
