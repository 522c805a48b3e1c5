/**
 * The config file through the real binary: defaults that make `burrow tcp host:port` work with
 * no flags against the local proxy, the environment over the file and the command line over
 * both, bad files as one line and exit 2, BURROW_CONFIG, `burrow config path|show|check`, and
 * what `ssh-config` leaves to the file.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runBurrow, tempDir } from '../helpers/burrow.js';
import { DEST, suiteWorld } from '../helpers/world.js';

const STACK = /\n\s+at |node:internal/;
/** Nothing listens there: a proxy URL that fails fast (exit 7). */
const NOWHERE = 'https://127.0.0.1:1';

describe('the config file', () => {
  const world = suiteWorld();

  /** A home directory with the proxy's CA in it and a config file (`yaml` with `{proxy}` filled in). */
  function home(yaml?: string): { env: NodeJS.ProcessEnv; dir: string; file: string } {
    const dir = tempDir('burrow-config-home-');
    copyFileSync(world.proxy.caPath, join(dir, 'corp-ca.pem'));
    const file = join(dir, '.config', 'burrow', 'config.yaml');
    mkdirSync(join(dir, '.config', 'burrow'), { recursive: true });
    if (yaml !== undefined) writeFileSync(file, yaml.replaceAll('{proxy}', world.proxy.url));
    // No XDG_CONFIG_HOME: the default, ~/.config/burrow/config.yaml.
    return { env: { ...world.env, HOME: dir, XDG_CONFIG_HOME: '' }, dir, file };
  }
  const GOOD = 'defaults:\n  pomerium-url: {proxy}\n  alternate-ca-path: ~/corp-ca.pem\n';

  async function tunnel(env: NodeJS.ProcessEnv, ...extra: string[]) {
    return runBurrow(['tcp', DEST, '--listen', '-', ...extra], { env, input: 'hello through the config\n' });
  }

  it('pomerium-url and alternate-ca-path from the file: burrow tcp host:port works with no flags', async () => {
    const { env } = home(GOOD);
    const { code, stdout, stderr } = await tunnel(env);
    assert.equal(code, 0, stderr);
    assert.equal(stdout.toString(), 'hello through the config\n');
  });

  it('a relative path in the file is relative to the file', async () => {
    const { env, dir } = home('defaults:\n  pomerium-url: {proxy}\n  alternate-ca-path: ../../corp-ca.pem\n');
    const { code, stderr } = await tunnel(env);
    assert.equal(code, 0, stderr);
    assert.ok(dir);
  });

  it('the environment beats the file; the command line beats the environment', async () => {
    const fileNowhere = home(GOOD.replace('{proxy}', NOWHERE));
    let result = await tunnel({ ...fileNowhere.env, BURROW_POMERIUM_URL: world.proxy.url });
    assert.equal(result.code, 0, result.stderr);
    const fileGood = home(GOOD);
    result = await tunnel({ ...fileGood.env, BURROW_POMERIUM_URL: NOWHERE });
    assert.equal(result.code, 7, `the environment's proxy was used: ${result.stderr}`);
    result = await tunnel({ ...fileGood.env, BURROW_POMERIUM_URL: NOWHERE }, '--pomerium-url', world.proxy.url);
    assert.equal(result.code, 0, result.stderr);
  });

  it('a bad file is one line naming the file, line and key, exit 2, no stack trace', async () => {
    const cases: Array<[string, RegExp]> = [
      ['defaults:\n  pomerium-url: {proxy}\n\n  conect-timeout: 5\n', /:4: defaults\.conect-timeout is not a setting — did you mean connect-timeout\?$/],
      ['defaults:\n  connect-timeout: [5]\n', /:2: defaults\.connect-timeout must be a string or a number, not a list — fix that line, then run "burrow config check"$/],
      ['defaults:\n  service-account: eyJhbGciOiJub25lIn0.e30.\n', /:2: defaults\.service-account cannot be set in a config file: it is a secret/],
      ['defaults:\n  a: 1\n  a: 2\n', /:3: defaults\.a is set twice/],
      ['defaults:\n  x: [\n', /: not valid YAML: /],
    ];
    for (const [yaml, expected] of cases) {
      const { env, file } = home(yaml);
      const { code, stdout, stderr } = await tunnel(env);
      assert.equal(code, 2, stderr);
      assert.equal(stdout.length, 0);
      const lines = stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, stderr);
      assert.ok(lines[0]!.startsWith(`burrow: error: ${file}:`), stderr);
      assert.match(lines[0]!, expected);
      assert.doesNotMatch(stderr, STACK);
      const check = await runBurrow(['config', 'check'], { env });
      assert.equal(check.code, 2);
      assert.equal(check.stderr, stderr, 'config check says the same line');
    }
  });

  it('BURROW_CONFIG names another file, which must exist; a missing default file is no config', async () => {
    const { env, dir } = home();
    const other = join(dir, 'work.yaml');
    writeFileSync(other, GOOD.replace('{proxy}', world.proxy.url));
    let result = await tunnel({ ...env, BURROW_CONFIG: other });
    assert.equal(result.code, 0, result.stderr);
    result = await tunnel({ ...env, BURROW_CONFIG: join(dir, 'nope.yaml') });
    assert.equal(result.code, 2);
    assert.equal(result.stderr, `burrow: error: the config file ${join(dir, 'nope.yaml')} (BURROW_CONFIG) does not exist — create it, or unset BURROW_CONFIG to use the default file\n`);
    // No file, no flags: the proxy is derived from the destination (git.corp.test does not resolve here).
    result = await runBurrow(['config', 'check'], { env });
    assert.equal(result.code, 0);
    assert.match(result.stderr, /^burrow: no config file at .*config\.yaml: every command uses its built-in defaults\n$/);
  });

  it('config path, show and check', async () => {
    const { env, file, dir } = home(`${GOOD}  connect-timeout: 12\ntunnels:\n  gitlab:\n    destination: ${DEST}\n    listen: 127.0.0.1:2202\n`);
    let result = await runBurrow(['config', 'path'], { env });
    assert.equal(result.code, 0);
    assert.equal(result.stdout.toString(), `${file}\n`);
    result = await runBurrow(['config', 'path'], { env: { ...env, BURROW_CONFIG: 'rel.yaml' } });
    assert.equal(result.stdout.toString(), `${join(process.cwd(), 'rel.yaml')}\n`);

    result = await runBurrow(['config', 'check'], { env });
    assert.deepEqual([result.code, result.stderr], [0, `burrow: ${file}: ok (3 defaults, 1 tunnel)\n`]);

    result = await runBurrow(['config', 'show'], { env: { ...env, BURROW_LOG_LEVEL: 'debug' } });
    assert.equal(result.code, 0, result.stderr);
    const table = result.stdout.toString();
    assert.match(table, /^SETTING +VALUE +FROM\n/);
    assert.match(table, new RegExp(`\\npomerium-url +${world.proxy.url.replaceAll('.', '\\.')} +${file.replaceAll('.', '\\.')}:2\\n`));
    assert.match(table, new RegExp(`\\nalternate-ca-path +${join(dir, 'corp-ca.pem').replaceAll('.', '\\.')} +.*:3\\n`));
    assert.match(table, /\nconnect-timeout +12 +.*:4\n/);
    assert.match(table, /\nlogin-timeout +300 +default\n/);
    assert.match(table, /\nlog-level +debug +BURROW_LOG_LEVEL\n/);
    assert.match(table, /\ngitlab +git\.corp\.test:22 +127\.0\.0\.1:2202\n/);

    result = await runBurrow(['config', 'show', '--json'], { env });
    const json = JSON.parse(result.stdout.toString()) as { path: string; exists: boolean; defaults: Array<{ setting: string; value: unknown; from: string; line?: number }>; tunnels: unknown[] };
    assert.equal(json.path, file);
    assert.equal(json.exists, true);
    assert.deepEqual(
      json.defaults.find((d) => d.setting === 'connect-timeout'),
      { setting: 'connect-timeout', value: '12', from: 'file', line: 4 },
    );
    assert.deepEqual(json.tunnels, [{ name: 'gitlab', line: 6, family: 'tcp', destination: DEST, listen: '127.0.0.1:2202', settings: {} }]);
  });

  it('ssh-config leaves to the default file what it gives, and writes out what a BURROW_CONFIG file gives', async () => {
    const { env, dir } = home(GOOD);
    let result = await runBurrow(['ssh-config', 'git.corp.test', '--connect-timeout', '9'], { env });
    assert.equal(result.code, 0, result.stderr);
    const proxyCommand = /ProxyCommand (.*)/.exec(result.stdout.toString())![1]!;
    assert.doesNotMatch(proxyCommand, /--pomerium-url|--alternate-ca-path/);
    assert.match(proxyCommand, /--connect-timeout 9/);
    // The written ProxyCommand reads the same file when ssh runs it: it works.
    const run = await runBurrow(['tcp', '--listen', '-', DEST, '--connect-timeout', '9'], { env, input: 'via ssh-config\n' });
    assert.equal(run.stdout.toString(), 'via ssh-config\n', run.stderr);

    const other = join(dir, 'work.yaml');
    writeFileSync(other, GOOD.replace('{proxy}', world.proxy.url));
    result = await runBurrow(['ssh-config', 'git.corp.test'], { env: { ...env, BURROW_CONFIG: other } });
    const written = result.stdout.toString();
    assert.ok(written.includes(`--pomerium-url ${world.proxy.url}`), written);
    assert.ok(written.includes(`--alternate-ca-path ${join(dir, 'corp-ca.pem')}`), written);
  });
});
