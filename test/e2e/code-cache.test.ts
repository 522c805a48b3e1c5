/**
 * The start-up loader's V8 code cache (src/cli/loader.ts), with the real CLI: where it is
 * written and with what permissions, that the next run takes it (V8 accepted it: it is not
 * rewritten), that a tunnel's cache replaces another command's, and that a damaged, foreign,
 * unwritable or switched-off cache never changes what burrow does or prints; and that it is
 * keyed by the bundle's content: another build of the same size and modification time (an
 * upgrade from a tarball, whose files all carry one fixed time) never runs the old bytecode.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { bundleHash, codeCachePath } from '../../src/cli/loader.js';
import { runBurrow, tempDir } from '../helpers/burrow.js';
import { repoRoot } from '../helpers/fixtures.js';
import { suiteWorld } from '../helpers/world.js';

const BUNDLE = join(repoRoot, 'dist', 'bin', 'burrow.cjs');
const LOADER = join(repoRoot, 'dist', 'bin', 'loader.cjs');
/** The YAML parser, a part bundled apart (src/external.ts `importPart`), loaded only for a config file. */
const YAML_PART = join(repoRoot, 'dist', 'bin', 'yaml.cjs');
const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

describe('start-up: the V8 code cache', () => {
  const world = suiteWorld();

  /** A fresh user cache directory and where the code cache goes in it. */
  function user() {
    const cache = tempDir('burrow-code-cache-');
    return { cache, file: codeCachePath(bundleHash(readFileSync(BUNDLE)), { XDG_CACHE_HOME: cache }), env: { XDG_CACHE_HOME: cache } };
  }
  const headerOf = (file: string) => readFileSync(file).subarray(0, 200).toString('latin1').split('\n')[0]!;
  /** What identifies a write: inode and modification time (a rename gives a new inode). */
  const stamp = (file: string) => {
    const s = statSync(file, { bigint: true });
    return `${s.ino}:${s.mtimeNs}`;
  };
  async function version(env: NodeJS.ProcessEnv) {
    const result = await runBurrow(['--version'], { env });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout.toString(), /^\d+\.\d+\.\d+\n$/);
    assert.equal(result.stderr, '', 'nothing on stderr');
    return result;
  }
  async function tunnel(env: NodeJS.ProcessEnv, data = 'through the cache') {
    const result = await runBurrow(world.tcpArgs(undefined, '--listen', '-'), { env: { ...world.env, ...env }, input: data });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.toString(), data);
    assert.equal(result.stderr, '', 'nothing on stderr');
  }

  for (const file of [BUNDLE, YAML_PART]) {
    const name = file.split('/').at(-1)!;
    it(`${name} is pure ASCII: read as a one-byte string (a single non-ASCII character makes V8 hold all of it as UTF-16, ~4 ms more per start)`, () => {
      const bytes = readFileSync(file);
      const at = bytes.findIndex((byte) => byte > 0x7f);
      const line = at === -1 ? 0 : bytes.subarray(0, at).toString('latin1').split('\n').length;
      assert.equal(at, -1, `non-ASCII byte at line ${line} of dist/bin/${name}: write it as \\u escape in the source (in a regex or string) or as ASCII (in a comment)`);
    });
  }

  it('the first run writes it privately; the next run takes it as it is', async () => {
    const u = user();
    assert.equal(existsSync(u.file), false);
    await version(u.env);
    assert.ok(existsSync(u.file), `written at ${u.file}`);
    assert.equal(u.file, join(u.cache, 'burrow', 'code-cache', u.file.split('/').at(-1)!));
    assert.equal(statSync(join(u.cache, 'burrow', 'code-cache')).mode & 0o777, 0o700);
    assert.equal(statSync(u.file).mode & 0o777, 0o600);
    const hash = sha256(readFileSync(BUNDLE));
    assert.ok(readFileSync(LOADER, 'utf8').includes(`"${hash}"`), 'the build put the bundle\'s hash in the loader');
    assert.equal(headerOf(u.file), `burrow-code-cache 2 ${hash} ${process.version} ${process.arch} other`);
    assert.equal(u.file.split('/').at(-1), `burrow-${hash.slice(0, 16)}.bin`);
    assert.ok(statSync(u.file).size > 10_000, 'V8 data follows the header');

    const before = stamp(u.file);
    await version(u.env);
    await version(u.env);
    assert.equal(stamp(u.file), before, 'V8 accepted the cache: it was not written again');
  });

  it("a tunnel's cache replaces another command's, and is kept by the commands after it", async () => {
    const u = user();
    await version(u.env);
    assert.match(headerOf(u.file), / other$/);
    await tunnel(u.env);
    assert.match(headerOf(u.file), / tunnel$/, 'the tunnel wrote the functions a tunnel needs');
    const written = stamp(u.file);
    await tunnel(u.env);
    await version(u.env);
    assert.equal(stamp(u.file), written, 'accepted by both, replaced by neither');
  });

  it('a damaged or foreign cache is compiled around and replaced; burrow works the same', async () => {
    const u = user();
    await version(u.env);
    const header = headerOf(u.file);
    // The right header over damaged V8 data: V8 turns it down.
    writeFileSync(u.file, Buffer.concat([Buffer.from(`${header}\n`), Buffer.alloc(50_000, 0x5a)]));
    await tunnel(u.env);
    assert.match(headerOf(u.file), / tunnel$/);
    assert.notEqual(readFileSync(u.file).at(-1), 0x5a, 'replaced by real data');
    // Another bundle's or another Node's cache: not even offered to V8.
    const real = readFileSync(u.file);
    const foreign = header.replace(process.version, 'v99.0.0').replace(/ other$/, ' tunnel');
    writeFileSync(u.file, Buffer.concat([Buffer.from(`${foreign}\n`), real.subarray(real.indexOf(0x0a) + 1)]));
    await tunnel(u.env);
    assert.equal(headerOf(u.file).includes('v99.0.0'), false, 'rewritten for this Node');
    // Not a cache at all.
    writeFileSync(u.file, 'garbage without a newline');
    await version(u.env);
    assert.match(headerOf(u.file), /^burrow-code-cache 2 /);
  });

  it('another build of the same size and modification time never runs the old bytecode; the old cache is removed', () => {
    // An installed copy (what the tarball holds), every file with one fixed time as npm extracts them.
    const app = tempDir('burrow-code-cache-app-');
    mkdirSync(join(app, 'bin'));
    mkdirSync(join(app, 'dist', 'bin'), { recursive: true });
    const fixed = new Date('1985-10-26T08:15:00Z');
    const put = (path: string, data: Buffer | string) => {
      writeFileSync(join(app, path), data);
      utimesSync(join(app, path), fixed, fixed);
    };
    for (const f of ['bin/burrow.js', 'bin/package.json']) copyFileSync(join(repoRoot, f), join(app, f));
    const bundleA = readFileSync(BUNDLE, 'utf8');
    const loaderA = readFileSync(LOADER, 'utf8');
    put('dist/bin/burrow.cjs', bundleA);
    put('dist/bin/loader.cjs', loaderA);

    // Build B: the same bundle with another version of the same length, and its loader.
    const { version } = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    const versionB = version.replace(/\d$/, (d) => String((Number(d) + 1) % 10));
    assert.ok(bundleA.includes(JSON.stringify(version)), 'the version is a literal in the bundle');
    const bundleB = bundleA.split(JSON.stringify(version)).join(JSON.stringify(versionB));
    assert.equal(Buffer.byteLength(bundleB), Buffer.byteLength(bundleA), 'the same size');
    const hashA = sha256(bundleA);
    assert.equal(loaderA.split(`"${hashA}"`).length, 2, 'the loader holds the hash once');
    const loaderB = loaderA.replace(`"${hashA}"`, `"${sha256(bundleB)}"`);

    const cache = tempDir('burrow-code-cache-');
    // A cache file of an older naming, left by an earlier burrow: removed with the other build's.
    mkdirSync(join(cache, 'burrow', 'code-cache'), { recursive: true, mode: 0o700 });
    writeFileSync(join(cache, 'burrow', 'code-cache', 'burrow-0123abcd.bin'), 'an older cache\n');
    const versionOf = () => {
      const r = spawnSync(process.execPath, [join(app, 'bin', 'burrow.js'), '--version'], {
        env: { PATH: process.env.PATH, HOME: process.env.HOME, XDG_CONFIG_HOME: tempDir('burrow-config-'), XDG_CACHE_HOME: cache },
        encoding: 'utf8',
        timeout: 20_000,
      });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, '');
      return r.stdout;
    };
    const caches = () => readdirSync(join(cache, 'burrow', 'code-cache')).sort();
    assert.equal(versionOf(), `${version}\n`);
    assert.equal(versionOf(), `${version}\n`, 'A with its own cache');
    assert.equal(caches().length, 1, "A's cache; the older one was removed when it was written");

    put('dist/bin/burrow.cjs', bundleB);
    put('dist/bin/loader.cjs', loaderB);
    assert.equal(statSync(join(app, 'dist/bin/burrow.cjs')).mtimeMs, fixed.getTime());
    assert.equal(versionOf(), `${versionB}\n`, "B's bytes ran, not A's bytecode");
    assert.deepEqual(caches(), [`burrow-${sha256(bundleB).slice(0, 16)}.bin`], "A's cache was removed");
    assert.equal(versionOf(), `${versionB}\n`, 'B with its own cache');
  });

  it('the YAML part loads only for a config file, with a cache of its own beside the bundle\'s, and neither removes the other', async () => {
    const u = user();
    await tunnel(u.env);
    assert.deepEqual(readdirSync(join(u.cache, 'burrow', 'code-cache')), [u.file.split('/').at(-1)], 'no config file: the part was never loaded');
    const config = tempDir('burrow-code-cache-config-');
    mkdirSync(join(config, 'burrow'));
    writeFileSync(join(config, 'burrow', 'config.yaml'), 'defaults:\n  log-level: warn\n');
    const withFile = { ...u.env, XDG_CONFIG_HOME: config };
    await tunnel(withFile);
    const partHash = sha256(readFileSync(YAML_PART));
    const part = codeCachePath(partHash, u.env, 'yaml');
    assert.equal(part, join(u.cache, 'burrow', 'code-cache', `yaml-${partHash.slice(0, 16)}.bin`));
    assert.ok(existsSync(part), 'the part wrote its cache');
    assert.ok(existsSync(u.file), "the bundle's cache is still there");
    assert.equal(statSync(part).mode & 0o777, 0o600);
    assert.equal(headerOf(part), `burrow-code-cache 2 ${partHash} ${process.version} ${process.arch} other`);
    assert.ok(readFileSync(LOADER, 'utf8').includes(`"${partHash}"`), "the build put the part's hash in the loader");
    const before = { part: stamp(part), bundle: stamp(u.file) };
    await tunnel(withFile);
    const check = await runBurrow(['config', 'check'], { env: withFile });
    assert.equal(check.code, 0, check.stderr);
    assert.deepEqual({ part: stamp(part), bundle: stamp(u.file) }, before, 'both accepted by V8: neither written again');
  });

  it('parallel first runs leave one whole cache and no temporary files', async () => {
    const u = user();
    await Promise.all(Array.from({ length: 6 }, (_, i) => tunnel(u.env, `parallel ${i}`)));
    assert.deepEqual(readdirSync(join(u.cache, 'burrow', 'code-cache')), [u.file.split('/').at(-1)]);
    const before = stamp(u.file);
    await tunnel(u.env);
    assert.equal(stamp(u.file), before, 'the survivor is accepted');
  });

  it('BURROW_NO_CODE_CACHE=1 writes nothing; an unwritable cache directory changes nothing', async () => {
    const off = user();
    await tunnel({ ...off.env, BURROW_NO_CODE_CACHE: '1' });
    assert.equal(existsSync(join(off.cache, 'burrow', 'code-cache')), false);

    // The cache directory's parent is a file: nothing can be created there.
    const blocked = tempDir('burrow-code-cache-');
    writeFileSync(join(blocked, 'burrow'), 'not a directory');
    await tunnel({ XDG_CACHE_HOME: blocked, BURROW_CREDENTIAL_STORE: 'file' });
    await version({ XDG_CACHE_HOME: blocked });
    // Under /proc, where mkdir answers ENOENT for any name: no hang (the runs above are bounded), no line.
    await version({ XDG_CACHE_HOME: '/proc/burrow-test' });
  });

});
