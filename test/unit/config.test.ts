/**
 * The config file (src/cli/config.ts): parsing and checking with line numbers, suggestions for
 * misspelt keys, wrong types, refused secrets, paths, tunnels, and where each value comes from
 * (command line > environment > file > the flag's default).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Command } from 'commander';
import { applyDefaults, closest, configLocation, effectiveDefaults, inheritedValues, namesProxy, optionValues, parseConfig, tunnelValues } from '../../src/cli/config.js';
import { addFlags } from '../../src/cli/flags.js';
import type { CommandName } from '../../src/cli/command-table.js';
import { BurrowError } from '../../src/errors.js';
import { text } from '../../src/output/messages.js';

const PATH = '/home/a/.config/burrow/config.yaml';
const env = { HOME: '/home/a' };

/** The one line a bad file gives (message — hint), and its code. */
async function failure(source: string): Promise<string> {
  try {
    await parseConfig(source, PATH, env);
  } catch (error) {
    assert.ok(error instanceof BurrowError, String(error));
    assert.equal(error.code, 'BURROW_CONFIG');
    assert.equal(error.exitCode, 2);
    // Every line names a fix; most say the general one, left out of the comparisons below.
    assert.ok(error.hint, error.message);
    return error.hint === text.configFixHint ? error.message : `${error.message} — ${error.hint}`;
  }
  assert.fail(`accepted: ${source}`);
}

describe('config file: parsing and checking', () => {
  it('reads defaults and tunnels, with lines, paths made absolute', async () => {
    const config = await parseConfig(
      [
        'defaults:                  # for every command',
        '  pomerium-url: https://pomerium.corp.example.com',
        '  alternate-ca-path: ~/corp-ca.pem',
        '  client-cert: certs/me.pem',
        '  connect-timeout: 5',
        '  no-proxy: true',
        'tunnels:',
        '  gitlab:',
        '    destination: git.corp.example.com:22',
        '    listen: 127.0.0.1:2202',
        '    max-duration: 8h',
        '  dns:',
        '    destination: udp+https://dns.corp.example.com:53',
        '    listen: 127.0.0.1:5353',
        '    idle-timeout: 30s',
        '',
      ].join('\n'),
      PATH,
      env,
    );
    assert.deepEqual(config.defaults, [
      { key: 'pomerium-url', value: 'https://pomerium.corp.example.com', line: 2 },
      { key: 'alternate-ca-path', value: '/home/a/corp-ca.pem', line: 3 },
      { key: 'client-cert', value: '/home/a/.config/burrow/certs/me.pem', line: 4 },
      { key: 'connect-timeout', value: '5', line: 5 },
      { key: 'no-proxy', value: true, line: 6 },
    ]);
    assert.deepEqual(config.tunnels, [
      { name: 'gitlab', line: 8, family: 'tcp', destination: 'git.corp.example.com:22', listen: '127.0.0.1:2202', listenLine: 10, settings: [{ key: 'max-duration', value: '8h', line: 11 }] },
      { name: 'dns', line: 12, family: 'udp', destination: 'udp+https://dns.corp.example.com:53', listen: '127.0.0.1:5353', listenLine: 14, settings: [{ key: 'idle-timeout', value: '30s', line: 15 }] },
    ]);
    assert.deepEqual(optionValues(config.defaults, 'tcp'), {
      pomeriumUrl: 'https://pomerium.corp.example.com',
      alternateCaPath: '/home/a/corp-ca.pem',
      clientCert: '/home/a/.config/burrow/certs/me.pem',
      connectTimeout: '5',
      proxy: false,
    });
    assert.deepEqual(optionValues(config.tunnels[1]!.settings, 'udp'), { idleTimeout: '30s' });
  });

  it('an empty file, or one of comments only, sets nothing', async () => {
    for (const source of ['', '# nothing yet\n', 'defaults:\ntunnels:\n']) {
      const config = await parseConfig(source, PATH, env);
      assert.deepEqual([config.defaults, config.tunnels], [[], []], source);
    }
  });

  it('names the file, the line and the key, with a suggestion for a misspelt one', async () => {
    assert.equal(
      await failure('defaults:\n  pomerium-url: https://p.test\n\n  conect-timeout: 5\n'),
      `${PATH}:4: defaults.conect-timeout is not a setting — did you mean connect-timeout?`,
    );
    assert.equal(await failure('default:\n  connect-timeout: 5\n'), `${PATH}:1: default is not a setting — did you mean defaults?`);
    assert.match(await failure('tunnels:\n  a:\n    destinaton: x:22\n'), /:3: tunnels\.a\.destinaton is not a setting — did you mean destination\?$/);
    assert.match(await failure('defaults:\n  zzzzzzzz: 1\n'), /:2: defaults\.zzzzzzzz is not a setting — the settings are the long flags/);
  });

  it('a repeatable flag takes a list (or one value); each item is checked on its line', async () => {
    const config = await parseConfig('defaults:\n  domain:\n    - corp.test\n    - example.org\n', PATH, env);
    assert.deepEqual(config.defaults, [{ key: 'domain', value: ['corp.test', 'example.org'], line: 2 }]);
    assert.deepEqual(optionValues(config.defaults, 'proxy'), { domain: ['corp.test', 'example.org'] });
    const one = await parseConfig('defaults:\n  domain: corp.test\n', PATH, env);
    assert.deepEqual(one.defaults[0]!.value, ['corp.test']);
    assert.match(await failure('defaults:\n  domain:\n    - corp.test\n    - "not a name"\n'), /:4: defaults\.domain: invalid --domain "not a name"/);
    assert.equal(await failure('defaults:\n  domain:\n    - [a, b]\n'), `${PATH}:3: defaults.domain must be a string, a number or a list of them, not a list`);
  });

  it('wrong types, bad values, duplicate keys and bad YAML are errors on their line', async () => {
    assert.equal(await failure('defaults:\n  connect-timeout: [1, 2]\n'), `${PATH}:2: defaults.connect-timeout must be a string or a number, not a list`);
    assert.equal(await failure('defaults:\n  alternate-ca-path: 3\n'), `${PATH}:2: defaults.alternate-ca-path must be a path, not a number`);
    assert.equal(await failure('defaults:\n  no-proxy: "yes"\n'), `${PATH}:2: defaults.no-proxy must be true or false, not a string`);
    assert.equal(await failure('defaults:\n  pomerium-url: true\n'), `${PATH}:2: defaults.pomerium-url must be a string or a number, not true`);
    assert.equal(await failure('defaults: 3\n'), `${PATH}:1: defaults must be a mapping (key: value lines), not a number`);
    assert.equal(await failure('- a\n- b\n'), `${PATH}:1: the file must be a mapping (key: value lines), not a list`);
    assert.match(await failure('defaults:\n  connect-timeout: abc\n'), /:2: defaults\.connect-timeout: invalid --connect-timeout "abc": expected a number of seconds/);
    assert.match(await failure('defaults:\n  log-level: loud\n'), /:2: defaults\.log-level: invalid --log-level "loud": expected silent, error/);
    assert.match(await failure('defaults:\n  pomerium-url: ftp://p.test\n'), /:2: defaults\.pomerium-url: /);
    assert.equal(await failure('defaults:\n  connect-timeout: 1\n  connect-timeout: 2\n'), `${PATH}:3: defaults.connect-timeout is set twice (first on line 2)`);
    assert.match(await failure('defaults:\n  x: [\n'), new RegExp(`^${PATH}:\\d+: not valid YAML: `));
    assert.match(await failure('defaults:\n  a: "unclosed\n'), /: not valid YAML: /);
    assert.equal(await failure('defaults:\n  proxy: http://squid.corp:3128\n  no-proxy: true\n'), `${PATH}:2: defaults.proxy and defaults.no-proxy cannot both be set`);
  });

  it('refuses secrets, safety switches and per-run flags, saying why', async () => {
    assert.match(await failure('defaults:\n  service-account: eyJh.x.y\n'), /:2: defaults\.service-account cannot be set in a config file: it is a secret.* — set service-account-file/);
    assert.match(await failure('defaults:\n  header: "X-Key: k"\n'), /:2: defaults\.header cannot be set in a config file: it is a secret/);
    assert.match(await failure('defaults:\n  disable-tls-verification: true\n'), /defaults\.disable-tls-verification cannot be set in a config file: it turns a safety check off/);
    assert.match(await failure('defaults:\n  listen: :2202\n'), /defaults\.listen cannot be set in a config file: .* — set it in a tunnels: entry/);
    assert.match(await failure('tunnels:\n  a:\n    destination: x:22\n    header: "X: y"\n'), /:4: tunnels\.a\.header cannot be set in a config file: it is a secret/);
  });

  it('checks tunnels: a destination, flags of their own command, a local address', async () => {
    assert.equal(await failure('tunnels:\n  gitlab:\n    listen: :2202\n'), `${PATH}:2: tunnels.gitlab needs a destination`);
    assert.match(await failure('tunnels:\n  a:\n    destination: x:22\n    idle-timeout: 3s\n'), /:4: tunnels\.a\.idle-timeout is not a setting of a tcp tunnel/);
    assert.match(await failure('tunnels:\n  a:\n    destination: udp+https://d:53\n    transport: connect\n'), /:4: tunnels\.a\.transport is not a setting of a udp tunnel/);
    assert.match(await failure('tunnels:\n  a:\n    destination: wss://gw/ssh\n    transport: connect\n'), /:3: tunnels\.a: --transport connect cannot be used/);
    assert.match(await failure('tunnels:\n  a:\n    destination: git.corp:0\n'), /:3: tunnels\.a: invalid destination/);
    assert.match(await failure('tunnels:\n  a:\n    destination: x:22\n    listen: "-"\n'), /:4: tunnels\.a\.listen must be a local address/);
    assert.match(await failure('tunnels:\n  "a b":\n    destination: x:22\n'), /:2: the tunnel name "a b"/);
    assert.match(await failure('tunnels:\n  a: x:22\n'), /:2: tunnels\.a must be a mapping/);
  });

  it('two tunnels of one family cannot listen on one address and port (a free port never clashes)', async () => {
    const two = (a: string, b: string, familyB = 'x:22') => `tunnels:\n  a:\n    destination: x:22\n    listen: "${a}"\n  b:\n    destination: ${familyB}\n    listen: "${b}"\n`;
    assert.equal(
      await failure(two(':2202', '127.0.0.1:2202')),
      `${PATH}:7: tunnels.b.listen 127.0.0.1:2202 is the address tunnels.a (line 4) listens on — ${text.configListenTakenHint}`,
    );
    assert.match(await failure(two('0.0.0.0:2202', 'localhost:2202')), /:7: tunnels\.b\.listen localhost:2202 is the address tunnels\.a \(line 4\)/);
    assert.match(await failure(two('127.0.0.2:53', '[::]:53')), /:7: tunnels\.b\.listen \[::\]:53 is the address tunnels\.a/);
    // Other addresses, a free port each, or TCP beside UDP on one port: no clash.
    for (const source of [two('127.0.0.1:2202', '127.0.0.2:2202'), two(':0', ':0'), two(':5353', ':5353', 'udp+https://dns.corp.test:53')]) {
      assert.equal((await parseConfig(source, PATH, env)).tunnels.length, 2, source);
    }
  });

  it('closest suggests only near misses', () => {
    assert.equal(closest('conect-timeout', ['connect-timeout', 'login-timeout']), 'connect-timeout');
    assert.equal(closest('qqq', ['connect-timeout']), undefined);
  });
});

describe('config file: where it is and where values come from', () => {
  const dirs: string[] = [];
  after(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));
  function home(yaml?: string): NodeJS.ProcessEnv {
    const dir = mkdtempSync(join(tmpdir(), 'burrow-config-unit-'));
    dirs.push(dir);
    if (yaml !== undefined) {
      mkdirSync(join(dir, 'burrow'));
      writeFileSync(join(dir, 'burrow', 'config.yaml'), yaml);
    }
    return { HOME: dir, XDG_CONFIG_HOME: dir };
  }
  async function values(name: CommandName, args: string[], environment: NodeJS.ProcessEnv): Promise<{ opts: Record<string, unknown>; command: Command }> {
    const command = addFlags(new Command(name).argument('[destination]').exitOverride(), name).action(() => {});
    command.parse(args, { from: 'user' });
    await applyDefaults(command, name, environment);
    return { opts: command.opts(), command };
  }
  const FILE = 'defaults:\n  pomerium-url: https://file.test\n  log-level: info\n  connect-timeout: 7\n  credential-store: file\n';

  it('is $XDG_CONFIG_HOME/burrow/config.yaml, or BURROW_CONFIG (relative to the working directory, ~ expanded)', () => {
    if (process.platform === 'darwin' || process.platform === 'win32') return;
    assert.deepEqual(configLocation({ XDG_CONFIG_HOME: '/x' }), { path: '/x/burrow/config.yaml', named: false });
    assert.deepEqual(configLocation({ HOME: '/h' }), { path: '/h/.config/burrow/config.yaml', named: false });
    assert.deepEqual(configLocation({ HOME: '/h', XDG_CONFIG_HOME: 'relative' }), { path: '/h/.config/burrow/config.yaml', named: false });
    assert.deepEqual(configLocation({ HOME: '/h', BURROW_CONFIG: '~/b.yaml' }), { path: '/h/b.yaml', named: true });
  });

  it('file beats the default, the environment beats the file, the command line beats both', async () => {
    const environment = home(FILE);
    let { opts } = await values('tcp', ['x:22'], environment);
    assert.deepEqual([opts.pomeriumUrl, opts.logLevel, opts.connectTimeout, opts.credentialStore], ['https://file.test', 'info', '7', 'file']);
    ({ opts } = await values('tcp', ['x:22'], { ...environment, BURROW_POMERIUM_URL: 'https://env.test', BURROW_LOG_LEVEL: 'debug', BURROW_CREDENTIAL_STORE: 'keychain' }));
    // BURROW_CREDENTIAL_STORE hides the file's value; the store selection reads it itself (auto included).
    assert.deepEqual([opts.pomeriumUrl, opts.logLevel, opts.connectTimeout, opts.credentialStore], ['https://env.test', 'debug', '7', undefined]);
    ({ opts } = await values('tcp', ['x:22', '--pomerium-url', 'https://flag.test', '--log-level', 'warn', '--connect-timeout', '3'], {
      ...environment,
      BURROW_POMERIUM_URL: 'https://env.test',
      BURROW_LOG_LEVEL: 'debug',
    }));
    assert.deepEqual([opts.pomeriumUrl, opts.logLevel, opts.connectTimeout], ['https://flag.test', 'warn', '3']);
    // --verbose on the command line is --log-level debug: it beats a level from elsewhere.
    ({ opts } = await values('tcp', ['x:22', '-v'], { ...environment, BURROW_LOG_LEVEL: 'warn' }));
    assert.equal(opts.logLevel, undefined);
  });

  it('a command that does not take a flag ignores it; a destination naming its proxy ignores a default proxy', async () => {
    const environment = home(FILE);
    const { opts } = await values('status', [], environment);
    assert.equal(opts.pomeriumUrl, undefined);
    assert.equal(opts.credentialStore, 'file');
    for (const destination of ['wss://gw.test/ssh', 'tcp+https://proxy.test/db:5432']) {
      assert.equal((await values('tcp', [destination], environment)).opts.pomeriumUrl, undefined, destination);
    }
    assert.equal((await values('tcp', ['tcp+https://db:5432'], environment)).opts.pomeriumUrl, 'https://file.test');
    assert.equal(namesProxy('https://proxy.test'), true);
    assert.equal(namesProxy('git.corp:22'), false);
  });

  it('no file is no config; a missing BURROW_CONFIG file and a bad environment value are errors', async () => {
    const environment = home();
    assert.equal((await values('tcp', ['x:22'], environment)).opts.connectTimeout, '30');
    await assert.rejects(values('tcp', ['x:22'], { ...environment, BURROW_CONFIG: join(environment.HOME!, 'nope.yaml') }), { code: 'BURROW_CONFIG' });
    await assert.rejects(values('tcp', ['x:22'], { ...environment, BURROW_LOG_LEVEL: 'loud' }), (error: BurrowError) => {
      assert.equal(error.code, 'BURROW_USAGE');
      assert.match(error.message, /^BURROW_LOG_LEVEL: invalid --log-level "loud"/);
      return true;
    });
  });

  it("a tunnel's values: its own keys over the environment over the file's defaults; up's command line over all", async () => {
    const config = await parseConfig(
      [
        'defaults:',
        '  pomerium-url: https://pomerium.corp.test',
        '  connect-timeout: 5',
        '  log-level: warn',
        'tunnels:',
        '  git:',
        '    destination: git.corp.test:22',
        '    listen: :2202',
        '    connect-timeout: 7',
        '  gw:',
        '    destination: wss://gw.corp.test/ssh',
        '  dns:',
        '    destination: udp+https://dns.corp.test:53',
        '',
      ].join('\n'),
      PATH,
      env,
    );
    const [git, gw, dns] = config.tunnels;
    const plain = tunnelValues(git!, config, env);
    assert.equal(plain.listen, ':2202');
    assert.equal(plain.connectTimeout, '7');
    assert.equal(plain.pomeriumUrl, 'https://pomerium.corp.test');
    assert.equal(plain.logLevel, 'warn');
    assert.equal(plain.transport, 'auto');
    // The environment beats the file's defaults, not the tunnel's own keys.
    const fromEnv = tunnelValues(git!, config, { ...env, BURROW_POMERIUM_URL: 'https://other.corp.test', BURROW_LOG_LEVEL: 'debug' });
    assert.equal(fromEnv.pomeriumUrl, 'https://other.corp.test');
    assert.equal(fromEnv.logLevel, 'debug');
    // A destination naming its proxy takes no default proxy; a udp tunnel gets udp's flags.
    assert.equal(tunnelValues(gw!, config, env).pomeriumUrl, undefined);
    assert.equal(tunnelValues(dns!, config, env).idleTimeout, '2m');
    assert.equal(tunnelValues(dns!, config, env).listen, '127.0.0.1:0');
    // `burrow up -v` beats a log-level from the file; `up --log-level` beats both.
    assert.equal(tunnelValues(git!, config, env, { verbose: true }).logLevel, undefined);
    assert.equal(tunnelValues(git!, config, env, { verbose: true, logLevel: 'error' }).logLevel, 'error');
  });

  it('show lists every configurable flag with its source', async () => {
    const environment = { ...home(), BURROW_LOG_LEVEL: 'debug' };
    const config = await parseConfig('defaults:\n  connect-timeout: 9\n', '/c.yaml', environment);
    const rows = new Map(effectiveDefaults(config, environment).map((s) => [s.key, [s.value, s.source, s.line ?? s.env]]));
    assert.deepEqual(rows.get('connect-timeout'), ['9', 'file', 2]);
    assert.deepEqual(rows.get('log-level'), ['debug', 'env', 'BURROW_LOG_LEVEL']);
    assert.deepEqual(rows.get('login-timeout'), ['300', 'default', undefined]);
    assert.equal(rows.has('service-account'), false);
    assert.equal(rows.has('listen'), false);
  });

  it('what a written ProxyCommand finds by itself: environment and default file, not a BURROW_CONFIG file', async () => {
    const environment = home(FILE);
    const { command } = await values('ssh-config', ['host', '--connect-timeout', '4'], { ...environment, BURROW_CREDENTIAL_STORE: 'file' });
    assert.deepEqual([...inheritedValues(command, environment)], ['pomeriumUrl']);
    assert.deepEqual([...inheritedValues(command, { ...environment, BURROW_CONFIG: '/x.yaml' })], []);
    assert.equal(command.opts().credentialStore, undefined, 'BURROW_CREDENTIAL_STORE beats the file, and ssh-config writes neither');
  });
});
