/**
 * The start-up loader's V8 code cache (src/cli/loader.ts), with the real CLI: where it is
 * written and with what permissions, that the next run takes it (V8 accepted it: it is not
 * rewritten), that a tunnel's cache replaces another command's, and that a damaged, foreign,
 * unwritable or switched-off cache never changes what burrow does or prints.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { codeCachePath } from '../../src/cli/loader.js';
import { runBurrow, tempDir } from '../helpers/burrow.js';
import { repoRoot } from '../helpers/fixtures.js';
import { suiteWorld } from '../helpers/world.js';

const BUNDLE = join(repoRoot, 'dist', 'bin', 'burrow.cjs');

describe('start-up: the V8 code cache', () => {
  const world = suiteWorld();

  /** A fresh user cache directory and where the code cache goes in it. */
  function user() {
    const cache = tempDir('burrow-code-cache-');
    return { cache, file: codeCachePath(BUNDLE, { XDG_CACHE_HOME: cache }), env: { XDG_CACHE_HOME: cache } };
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

  it('the first run writes it privately; the next run takes it as it is', async () => {
    const u = user();
    assert.equal(existsSync(u.file), false);
    await version(u.env);
    assert.ok(existsSync(u.file), `written at ${u.file}`);
    assert.equal(u.file, join(u.cache, 'burrow', 'code-cache', u.file.split('/').at(-1)!));
    assert.equal(statSync(join(u.cache, 'burrow', 'code-cache')).mode & 0o777, 0o700);
    assert.equal(statSync(u.file).mode & 0o777, 0o600);
    const bundle = statSync(BUNDLE);
    assert.equal(headerOf(u.file), `burrow-code-cache 1 ${bundle.size} ${bundle.mtimeMs} ${process.version} ${process.arch} other`);
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
    assert.match(headerOf(u.file), /^burrow-code-cache 1 /);
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
