/**
 * Fuzzing burrow's command line: generated flag combinations of `tcp`, `login`, `logout`,
 * `ssh-config`, `status` and `cache`, mostly structured mutations of valid command lines.
 *
 * Many run in-process through main() (the CLI parser, validation and command start-up, exactly
 * as the binary runs them), with a Runtime on which Ctrl-C has already been pressed: a valid
 * command line starts (a listener binds on loopback, a tunnel or sign-in begins) and stops at
 * once, without reaching any network. A sample of the usage errors is then replayed through real
 * spawned burrow processes, which must print the same single line and exit 2.
 *
 * The CLI contract checked: exit 2 for usage errors with exactly one `burrow: error: … — hint`
 * line on stderr; no stack trace; nothing on stdout; never the internal-error exit 1.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { parseListen } from '../../src/cli/listen-address.js';
import { main } from '../../src/cli/main.js';
import type { ProcessRuntime } from '../../src/cli/runtime.js';
import { ExitCode } from '../../src/errors.js';
import { BURROW_BIN, runBurrow, stopAll, tempDir } from '../helpers/burrow.js';
import { fixture, readFixture } from '../helpers/fixtures.js';
import { fuzz, mutate, type Rng, randomString, stringCase, summary, tripwire, within } from '../helpers/fuzz.js';

const STACK = /\n\s+at |node:internal|^\s+at /m;

interface CliCase {
  argv: string[];
  env: NodeJS.ProcessEnv;
}

interface CliOutcome {
  code: number;
  stdout: string;
  stderr: string;
}

let files: Record<'empty' | 'junk' | 'token' | 'dir' | 'sshKey' | 'der' | 'damaged', string>;
let cacheHome: string;

before(() => {
  const dir = tempDir('burrow-fuzz-cli-');
  cacheHome = join(dir, 'cache');
  mkdirSync(cacheHome);
  files = {
    empty: join(dir, 'empty'),
    junk: join(dir, 'junk'),
    token: join(dir, 'token'),
    dir,
    sshKey: join(dir, 'id_ed25519'),
    der: join(dir, 'ca.der'),
    damaged: join(dir, 'damaged.pem'),
  };
  writeFileSync(files.empty, '');
  writeFileSync(files.junk, '\u0000\u00ff not a pem\n');
  writeFileSync(files.token, 'eyJhbGciOiJub25lIn0.eyJleHAiOjF9.\n');
  // What people pass as a CA by mistake: an SSH key, a DER certificate, a damaged PEM.
  writeFileSync(files.sshKey, '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ==\n-----END OPENSSH PRIVATE KEY-----\n');
  writeFileSync(files.der, Buffer.from(readFixture('ca.pem').replace(/-----[A-Z ]+-----|\s/g, ''), 'base64'));
  writeFileSync(files.damaged, readFixture('ca.pem').replace(/\n[A-Za-z0-9+/]{20}/, '\n!!!!'));
});

const wire = tripwire();
after(async () => {
  wire.remove();
  await stopAll();
  wire.check('after the CLI fuzz');
});

// --- generating command lines ---------------------------------------------------------------------

/**
 * Some cases use only valid values (the command starts, then stops at the pressed Ctrl-C),
 * the others mutate them (usage errors, mostly). Set per case by cliCase.
 */
let cleanCase = false;
const sc = (rng: Rng, valid: readonly string[], junkMax: number) => (cleanCase ? rng.pick(valid) : stringCase(rng, valid, junkMax));

const DESTINATIONS = ['git.corp.test:22', '[::1]:22', 'tcp+https://proxy.corp.test:8443/db:5432', 'wss://gw.corp.test/ssh', 'ws://127.0.0.1:1/x', '10.0.0.5:22'];
const PROXY_URLS = ['https://proxy.corp.test', 'https://127.0.0.1:9443/', 'http://[::1]:8080'];
const LISTENS = ['-', ':0', '0', '127.0.0.1:0', '[::1]:0', 'localhost:0', ':2202', '0.0.0.0:0'];
const SECONDS = ['30', '0', '0.1', '1', '3600', '86400', '1e3', '-1', 'abc', '0.05', ''];
const FORWARD = ['http://squid.corp:3128', 'http://u:s3cret@10.0.0.1:3128', 'proxy.corp:3128', 'socks5://x:1080'];
const HEADERS = ['X-Api-Key: abc', 'Authorization: x', 'Name:', 'bad name: v', 'X: a\r\nb', 'Proxy-Foo: 1', 'Sec-WebSocket-Key: k'];

/** One flag of a command: its name and a generator for its value (none for booleans). */
type Flag = [name: string, value?: (rng: Rng) => string];

const ca = () => readFixture('ca.pem');
const pathValue = (rng: Rng) =>
  rng.pick([
    fixture('ca.pem'), fixture('client.pem'), fixture('client-key.pem'), fixture('ca-key.pem'), '/nonexistent/file.pem',
    files.empty, files.junk, files.dir, files.token, files.sshKey, files.der, files.damaged,
  ]);

const TLS_FLAGS: Flag[] = [
  ['--disable-tls-verification'],
  ['--alternate-ca-path', pathValue],
  ['--ca-cert', (rng) => rng.pick([ca(), Buffer.from(ca()).toString('base64'), 'bm90IGEgY2VydA==', mutate(rng, Buffer.from(ca()).toString('base64')), ''])],
  ['--client-cert', pathValue],
  ['--client-key', pathValue],
];
const SIGN_IN_FLAGS: Flag[] = [
  ['--browser-cmd', (rng) => sc(rng, ['/nonexistent/browser', 'true'], 20)],
  ['--no-browser'],
  ['--login-timeout', (rng) => sc(rng, SECONDS, 8)],
  // The keychain is left out: loading it in-process is slow and is not what is fuzzed here.
  ['--credential-store', (rng) => sc(rng, ['file', 'auto', 'keytar'], 10).replace(/^keychain$/, 'file')],
];
/** The commands that only read or forget sign-ins take the store's flag alone. */
const STORE_FLAGS: Flag[] = SIGN_IN_FLAGS.filter(([flag]) => flag === '--credential-store');
/** logout opens the sign-out page as sign-in opens its page, but waits for nothing. */
const LOGOUT_FLAGS: Flag[] = [['--browser'], ...SIGN_IN_FLAGS.filter(([flag]) => flag !== '--login-timeout')];
const LOG_FLAGS: Flag[] = [['-v'], ['--verbose'], ['--log-level', (rng) => sc(rng, ['silent', 'error', 'warn', 'info', 'debug'], 8)]];
const PROXY_FLAGS: Flag[] = [['--proxy', (rng) => sc(rng, FORWARD, 30)], ['--no-proxy']];

const COMMANDS: Record<string, { positional: (rng: Rng) => string[]; flags: Flag[] }> = {
  tcp: {
    positional: (rng) => [sc(rng, DESTINATIONS, 30)],
    flags: [
      ['--listen', (rng) => sc(rng, LISTENS, 20)],
      ['--pomerium-url', (rng) => sc(rng, PROXY_URLS, 30)],
      ['--connect-timeout', (rng) => sc(rng, SECONDS, 8)],
      ['--transport', (rng) => sc(rng, ['auto', 'connect', 'websocket'], 10)],
      ['--ping-interval', (rng) => sc(rng, SECONDS, 8)],
      ['--header', (rng) => sc(rng, HEADERS, 20)],
      ['--service-account', (rng) => sc(rng, ['eyJhbGciOiJub25lIn0.eyJleHAiOjF9.', ' '], 20)],
      ['--service-account-file', pathValue],
      ...PROXY_FLAGS,
      ...SIGN_IN_FLAGS,
      ...TLS_FLAGS,
      ...LOG_FLAGS,
    ],
  },
  login: {
    positional: (rng) => [sc(rng, PROXY_URLS, 30)],
    flags: [['--connect-timeout', (rng) => sc(rng, SECONDS, 8)], ...PROXY_FLAGS, ...SIGN_IN_FLAGS, ...TLS_FLAGS, ...LOG_FLAGS],
  },
  // No config file in the fuzz's environment: up refuses (exit 2), or prints a service file.
  up: {
    positional: (rng) => (rng.chance(0.5) ? [sc(rng, ['gitlab', 'a b', '../x', '-'], 30)] : []),
    flags: [['--print-service', (rng) => sc(rng, ['systemd', 'launchd', 'upstart'], 20)], ...SIGN_IN_FLAGS, ...LOG_FLAGS],
  },
  logout: { positional: (rng) => (rng.chance(0.5) ? [sc(rng, PROXY_URLS, 30)] : []), flags: LOGOUT_FLAGS },
  'ssh-config': {
    positional: (rng) => [sc(rng, ['git.corp.test', '*.corp.test', 'a b !c', ...PROXY_URLS, ...DESTINATIONS], 30)],
    flags: [
      ['--host', (rng) => sc(rng, ['*.corp.test', 'git'], 20)],
      ['--user', (rng) => sc(rng, ['git', 'alice.b'], 12)],
      ['--pomerium-url', (rng) => sc(rng, PROXY_URLS, 30)],
      ['--service-account-file', pathValue],
      ['--server-alive-interval', (rng) => sc(rng, SECONDS, 8)],
      ['--connect-timeout', (rng) => sc(rng, SECONDS, 8)],
      ['--transport', (rng) => sc(rng, ['auto', 'connect', 'websocket'], 10)],
      ['--ping-interval', (rng) => sc(rng, SECONDS, 8)],
      ['--header', (rng) => sc(rng, HEADERS, 20)],
      ...PROXY_FLAGS,
      ...SIGN_IN_FLAGS,
      ...TLS_FLAGS,
    ],
  },
  status: { positional: (rng) => (rng.chance(0.5) ? [sc(rng, PROXY_URLS, 30)] : []), flags: STORE_FLAGS },
  cache: { positional: (rng) => [sc(rng, ['location', 'clear'], 10)], flags: STORE_FLAGS },
};

/** A valid --listen that binds only loopback, on a free port: no test may take a fixed port. */
function safeListen(value: string): string {
  try {
    const listen = parseListen(value);
    if (listen.kind === 'stdio') return value;
    return listen.host === '::1' ? '[::1]:0' : '127.0.0.1:0';
  } catch {
    return value;
  }
}

function cliCase(rng: Rng): CliCase {
  cleanCase = rng.chance(0.35);
  const name = rng.weighted<string>([
    [8, 'tcp'],
    [3, 'login'],
    [3, 'ssh-config'],
    [1, 'logout'],
    [1, 'status'],
    [1, 'cache'],
  ]);
  const command = COMMANDS[name]!;
  const args: string[] = [...command.positional(rng)];
  const count = cleanCase ? rng.range(0, 4) : rng.weighted<number>([
    [3, rng.range(0, 3)],
    [2, rng.range(3, 8)],
    [1, rng.range(8, 16)],
  ]);
  for (let i = 0; i < count; i++) {
    const [flag, value] = rng.pick(command.flags);
    const spelled = !cleanCase && rng.chance(0.08) ? mutate(rng, flag) : flag;
    let v = value ? value(rng) : undefined;
    if (flag === '--listen' && v !== undefined) v = safeListen(v);
    const at = rng.int(args.length + 1);
    const piece = v === undefined ? [spelled] : rng.chance(0.15) ? [`${spelled}=${v}`] : !cleanCase && rng.chance(0.05) ? [spelled] : [spelled, v];
    args.splice(at, 0, ...piece);
  }
  // Stray arguments, a lone "--", an unknown flag, or no subcommand at all.
  rng.weighted<() => void>([
    [cleanCase ? 1000 : 10, () => {}],
    [1, () => args.push(randomString(rng, 12))],
    [1, () => args.push('--')],
    [1, () => args.splice(rng.int(args.length + 1), 0, rng.pick(['--bogus', '-x', '--listen', '--help', '-h', '--version']))],
  ])();
  const argv = !cleanCase && rng.chance(0.03) ? [mutate(rng, name), ...args] : [name, ...args];
  const env: NodeJS.ProcessEnv = { HOME: files.dir, XDG_CACHE_HOME: cacheHome, BURROW_CREDENTIAL_STORE: 'file', NO_COLOR: '1' };
  if (rng.chance(0.15)) env.HTTPS_PROXY = stringCase(rng, FORWARD, 30);
  if (rng.chance(0.1)) env.BURROW_SERVICE_ACCOUNT = stringCase(rng, ['eyJhbGciOiJub25lIn0.eyJleHAiOjF9.', ''], 20);
  if (rng.chance(0.05)) env.BURROW_CREDENTIAL_STORE = stringCase(rng, ['file', 'auto'], 8);
  return { argv, env };
}

// --- running a command line in-process --------------------------------------------------------------

/** The process as main() sees it, with Ctrl-C pressed before anything starts. */
function interruptedRuntime(env: NodeJS.ProcessEnv, out: { text: string; err: string }): ProcessRuntime {
  let exitCode = 0;
  return {
    env,
    stdin: Readable.from([]),
    stdout: new Writable({
      write(chunk: Buffer, _encoding, callback) {
        out.text += chunk.toString('utf8');
        callback();
      },
    }),
    stderr: new Writable({
      write(chunk: Buffer, _encoding, callback) {
        out.err += chunk.toString('utf8');
        callback();
      },
    }),
    version: '0.0.0-fuzz',
    interactiveTerminal: false,
    setExitCode: (code) => {
      exitCode = code;
    },
    exitCode: () => exitCode,
    onSignal(handler) {
      handler('SIGINT');
      return () => {};
    },
    selfCommand: () => [process.execPath, BURROW_BIN],
    hideArguments: () => {},
    // The test process's own V8 flags stay as they are.
    forgoOptimizingCompiler: () => {},
  };
}

/** Runs main() in this process, with the runtime's stdout and stderr captured. */
async function runInProcess({ argv, env }: CliCase): Promise<CliOutcome> {
  const out = { text: '', err: '' };
  const code = await main(['node', 'burrow', ...argv], { runtime: interruptedRuntime(env, out) });
  return { code, stdout: out.text, stderr: out.err };
}

/** Exit codes a command line can end with here: ok, usage, or interrupted (the pressed Ctrl-C). */
const EXPECTED = new Set<number>([ExitCode.ok, ExitCode.usage, ExitCode.interrupted]);

/** `burrow status` with nothing usable cached (the fuzz cache is empty) exits 3, as documented. */
const NOT_SIGNED_IN = (argv: readonly string[] | undefined) => argv?.[0] === 'status';

function checkContract(outcome: CliOutcome, what: string, argv?: readonly string[]): string {
  const { code, stdout, stderr } = outcome;
  assert.doesNotMatch(stderr, STACK, `${what}: no stack trace:\n${stderr}`);
  if (code === ExitCode.authRequired && NOT_SIGNED_IN(argv)) {
    assert.match(stderr.trim().split('\n').at(-1)!, /^burrow: error: .+ — .+$/, `${what}: status ends with message — hint`);
    return 'not signed in';
  }
  assert.ok(EXPECTED.has(code), `${what}: exit ${code} (expected 0, 2 or 130); stderr:\n${stderr}`);
  for (const line of stderr.split('\n').filter(Boolean)) assert.match(line, /^burrow: /, `${what}: every stderr line is burrow's: ${JSON.stringify(line)}`);
  if (code === ExitCode.usage) {
    const lines = stderr.trim().split('\n');
    assert.equal(lines.length, 1, `${what}: exactly one line on stderr, got:\n${stderr}`);
    assert.match(lines[0]!, /^burrow: error: .+ — .+$/, `${what}: message — hint`);
    // System and OpenSSL codes are shown as words (a code without words may still show, but not these).
    assert.doesNotMatch(lines[0]!, /\b(EISDIR|ENOENT|EACCES|EADDRNOTAVAIL|EADDRINUSE)\b|ERR_SSL_|error:[0-9A-F]{8}:/, `${what}: words, not codes`);
    assert.equal(stdout, '', `${what}: nothing on stdout`);
    return 'usage error';
  }
  if (code === ExitCode.interrupted) return 'started, interrupted';
  return stdout === '' ? 'ok' : 'ok with output';
}

describe('fuzz: the command line', () => {
  const usageErrors: Array<{ input: CliCase; stderr: string }> = [];

  it('in-process: every generated command line is a usage error (one line, exit 2) or starts cleanly', async (t) => {
    const report = await fuzz('cli', { runs: 1500, budgetMs: 12_000 }, cliCase, async (input) => {
      const outcome = await within(runInProcess(input), 10_000, 'in-process burrow');
      // Let a stopped listener or an aborted tunnel finish its callbacks inside this case.
      await new Promise((resolve) => setImmediate(resolve));
      wire.check();
      const label = checkContract(outcome, 'in-process', input.argv);
      if (label === 'usage error') usageErrors.push({ input, stderr: outcome.stderr });
      return label;
    });
    t.diagnostic(summary('cli', report));
  });

  it('spawned: a sample of those usage errors gives the same one line and exit 2 from the real binary', async (t) => {
    // One per distinct message shape, so the sample spans different failures.
    const byShape = new Map<string, { input: CliCase; stderr: string }>();
    // No process can be given a NUL byte in an argument or the environment, nor half a UTF-16 pair.
    const unspawnable = /\0|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
    const spawnable = usageErrors.filter(({ input }) => ![...input.argv, ...Object.values(input.env)].some((a) => a !== undefined && unspawnable.test(a)));
    for (const error of spawnable) {
      const shape = error.stderr.replace(/"[^"]*"/g, '""').slice(0, 50);
      if (!byShape.has(shape)) byShape.set(shape, error);
    }
    const sample = [...byShape.values()];
    assert.ok(sample.length >= 5, `enough distinct usage errors to replay (${sample.length})`);
    const report = await fuzz(
      'cli-spawned',
      { runs: 24, budgetMs: 15_000 },
      (_rng, index) => sample[index % sample.length]!,
      async ({ input, stderr }) => {
        const r = await runBurrow(input.argv, { env: { ...input.env, PATH: process.env.PATH }, timeoutMs: 10_000 });
        assert.equal(r.code, ExitCode.usage, `exit 2; stderr:\n${r.stderr}`);
        assert.equal(r.stdout.length, 0, 'nothing on stdout');
        assert.doesNotMatch(r.stderr, STACK);
        assert.equal(r.stderr, stderr, 'the same line as in-process');
        return 'usage error';
      },
    );
    t.diagnostic(summary('cli-spawned', report));
  });

  it('regressions found by fuzzing', async () => {
    const env = { HOME: files.dir, XDG_CACHE_HOME: cacheHome, BURROW_CREDENTIAL_STORE: 'file', NO_COLOR: '1' };
    const run = async (argv: string[], extraEnv: NodeJS.ProcessEnv = {}) => {
      const outcome = await within(runInProcess({ argv, env: { ...env, ...extraEnv } }), 10_000, argv.join(' '));
      await new Promise((resolve) => setImmediate(resolve));
      wire.check(argv.join(' '));
      return outcome;
    };
    // Ctrl-C during `burrow login` (while waiting for the lock) was "unexpected error … this is a bug", exit 1.
    assert.equal((await run(['login', 'https://127.0.0.1:9443/'])).code, ExitCode.interrupted);
    // Ctrl-C while a WebSocket tunnel was dialling: a TypeError escaped (an AbortError's code is a
    // number) and the command hung.
    assert.equal((await run(['tcp', 'ws://127.0.0.1:1/x', '--listen', '-'])).code, ExitCode.interrupted);
    // A tunnel that failed to open in stdio mode left stdio's stream to emit an unhandled AbortError.
    assert.equal((await run(['tcp', 'git.corp.test:22', '--listen', '-'])).code, ExitCode.interrupted);
    // A debug line or warning came before a usage error found later: two lines on stderr.
    const late = await run(['tcp', '-v', '--disable-tls-verification', '--header', 'X: a\r\nb', 'wss://gw.corp.test/ssh'], {
      HTTPS_PROXY: 'http://10.0.0.1:3128',
    });
    assert.equal(checkContract(late, 'late usage error'), 'usage error');
    // A directory given as a file showed Node's "EISDIR: illegal operation on a directory, read".
    for (const flag of ['--service-account-file', '--alternate-ca-path']) {
      const directory = await run(['tcp', 'git.corp.test:22', '--pomerium-url', 'https://127.0.0.1:9443', flag, files.dir]);
      assert.equal(checkContract(directory, flag), 'usage error');
      assert.match(directory.stderr, /it is a directory, not a file/);
    }
    // `logout` opened the store (and printed its keychain fallback line) before checking the URL.
    const logout = await run(['logout', 'http"://[::1]:8080'], { BURROW_CREDENTIAL_STORE: 'auto' });
    assert.equal(checkContract(logout, 'logout'), 'usage error');
  });
});
