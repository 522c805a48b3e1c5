/**
 * What a first user sees from the real binary before any tunnel opens: output into pipes that
 * close early and onto a full device, usage errors as one line in burrow's words, refused
 * headers, commands that store nothing, the spinner on a narrow terminal, and a start on a Node
 * or a checkout that cannot run burrow. Real pipes (`sh -c` with a real `head`/`true`), real
 * /dev/full, a real pty.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Command, CommanderError, Option } from 'commander';
import { ExitCode } from '../../src/errors.js';
import { text } from '../../src/output/messages.js';
import { usageFromCommander } from '../../src/cli/main.js';
import { selectStore } from '../../src/store/select.js';
import { BURROW_BIN, runBurrow, stopAll, tempDir } from '../helpers/burrow.js';
import { repoRoot } from '../helpers/fixtures.js';
import { shQuote } from '../helpers/sshd.js';
import { runInTerminal, stopAllTerminals } from '../helpers/terminal.js';
import { DEST, startWorld, eventually, type World } from '../helpers/world.js';

/** `text` as a literal inside a RegExp. */
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const BURROW = `${shQuote(process.execPath)} ${shQuote(BURROW_BIN)}`;

interface ShellResult {
  /** burrow's own exit code (reported on fd 3 by the script). */
  burrow: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `burrow <args> <tail>` through `sh -c`; burrow's own exit status comes back on stderr after
 * a marker (sh has no PIPESTATUS). Bounded: SIGKILL after 20 s.
 */
async function shell(args: string, tail: string): Promise<ShellResult> {
  const rcFile = `${tempDir('burrow-rc-')}/rc`;
  // The status is written to a file by a wrapper around burrow alone, whatever follows the pipe.
  const wrapped = `{ ${BURROW} ${args}; echo $? > ${shQuote(rcFile)}; } ${tail}; echo "@@burrow=$(cat ${shQuote(rcFile)})" >&2`;
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, XDG_CONFIG_HOME: tempDir('burrow-config-'), XDG_CACHE_HOME: tempDir('burrow-cache-'), BURROW_CREDENTIAL_STORE: 'file', NO_COLOR: '1' };
  const child = spawn('sh', ['-c', wrapped], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await new Promise((resolve) => child.once('close', resolve));
  clearTimeout(timer);
  const match = /@@burrow=(\d+)\n$/.exec(stderr);
  assert.ok(match, `no exit status reported; stderr: ${stderr}`);
  return { burrow: Number(match[1]), stdout, stderr: stderr.slice(0, match.index) };
}

after(stopAll);

/**
 * A stdio tunnel through `sh -c` that sends "hello" (then holds stdin open for a second) with its
 * stdout going to `tail`; burrow's own exit status (from a file, whatever follows it) and stderr.
 */
async function stdioThroughShell(world: World, tail: string): Promise<{ code: string; stderr: string }> {
  const args = [...world.tcpArgs(), '--listen', '-'].map(shQuote).join(' ');
  const rc = `${tempDir('burrow-rc-')}/rc`;
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, XDG_CONFIG_HOME: tempDir('burrow-config-'), XDG_CACHE_HOME: tempDir('burrow-cache-'), BURROW_CREDENTIAL_STORE: 'file', NO_COLOR: '1', ...world.env };
  const child = spawn('sh', ['-c', `{ printf hello; sleep 1; } | { ${BURROW} ${args}; echo $? > ${shQuote(rc)}; } ${tail}`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await new Promise((resolve) => child.once('close', resolve));
  clearTimeout(timer);
  return { code: readFileSync(rc, 'utf8').trim(), stderr };
}


describe('stdout into a pipe that closes, or onto a full device', () => {
  it('a reader that exits before burrow writes (| true): exit 141, nothing on stderr', async () => {
    for (const args of ['version', '--help', 'tcp --help', 'ssh-config host.corp.example.com', 'completion bash', 'cache location']) {
      const result = await shell(args, '| true');
      assert.equal(result.stderr, '', `${args}: ${result.stderr}`);
      assert.equal(result.burrow, ExitCode.outputClosed, `${args}`);
    }
  });

  it('a reader that takes part and leaves (| head, | grep -m1): what it read, no trace, 0 or 141', async () => {
    const head = await shell('--help', '| head -3');
    assert.equal(head.stderr, '');
    assert.match(head.stdout, /^Usage: burrow /);
    assert.equal(head.stdout.split('\n').length, 4);
    assert.ok([0, 141].includes(head.burrow), `exit ${head.burrow}`);
    const grep = await shell('tcp --help', '| grep -m1 -- --listen');
    assert.equal(grep.stderr, '');
    assert.match(grep.stdout, /^ {2}--listen <addr>/);
    assert.ok([0, 141].includes(grep.burrow), `exit ${grep.burrow}`);
  });

  it('/dev/full: one line saying the output could not be written, exit 14', async () => {
    for (const args of ['version', 'tcp --help', 'ssh-config host.corp.example.com']) {
      const result = await shell(args, '> /dev/full');
      assert.equal(result.stderr, `burrow: error: ${text.outputFailed('no space left on device')} — ${text.outputFailedHint}\n`, args);
      assert.equal(result.burrow, ExitCode.output, args);
    }
  });

  it('stdio mode into a reader that left (| true): the tunnel ends as the local side closing, exit 0, no trace', async () => {
    const world = await startWorld();
    try {
      const { code, stderr } = await stdioThroughShell(world, '| true');
      assert.equal(stderr, '');
      assert.equal(code, '0');
    } finally {
      await world.close();
    }
  });

  it('stdio mode onto a full device (> /dev/full): the echoed bytes are lost, so one line and exit 14, not 0', async () => {
    const world = await startWorld();
    try {
      const { code, stderr } = await stdioThroughShell(world, '> /dev/full');
      assert.equal(code, String(ExitCode.output), stderr);
      const lines = stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, stderr);
      assert.match(lines[0]!, new RegExp(`^burrow: error: ${escape(text.tunnelOutputFailed(DEST, 'no space left on device'))}`));
      assert.ok(lines[0]!.includes(text.outputFailedHint), stderr);
      assert.ok(!stderr.includes(world.token), 'never a token');
    } finally {
      await world.close();
    }
  });

  it('a listener whose address nobody reads (| head -c0) keeps serving, and says nothing of it', async () => {
    const world = await startWorld();
    const cache = tempDir('burrow-cache-');
    const args = [...world.tcpArgs(), '--listen', '127.0.0.1:0'].map(shQuote).join(' ');
    const env = { PATH: process.env.PATH, HOME: process.env.HOME, XDG_CONFIG_HOME: tempDir('burrow-config-'), XDG_CACHE_HOME: cache, BURROW_CREDENTIAL_STORE: 'file', NO_COLOR: '1', ...world.env };
    const child = spawn('sh', ['-c', `${BURROW} ${args} | head -c0`], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const closed = new Promise((resolve) => child.once('close', resolve));
    try {
      await eventually(() => /listening on 127\.0\.0\.1:\d+/.test(stderr), 15_000, () => `the listening line; stderr: ${stderr}`);
      const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(stderr)![1]);
      // head has exited by now: the address line met a closed pipe.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const echoed = await new Promise<string>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1');
        let got = '';
        socket.setEncoding('utf8').on('data', (d: string) => {
          got += d;
          if (got.length >= 5) socket.end();
        });
        socket.on('error', reject).on('close', () => resolve(got));
        socket.write('hello');
        setTimeout(() => socket.destroy(new Error(`no echo within 10 s; stderr: ${stderr}`)), 10_000).unref();
      });
      assert.equal(echoed, 'hello');
      assert.doesNotMatch(stderr, /EPIPE|Unhandled|at /);
    } finally {
      process.kill(-child.pid!, 'SIGTERM');
      await closed;
      await world.close();
    }
  });
});

describe('usage errors: one line in burrow\'s words, for each of commander\'s errors', () => {
  const usage = async (args: string[]) => {
    const result = await runBurrow(args);
    assert.equal(result.code, ExitCode.usage, result.stderr);
    assert.equal(result.stderr.split('\n').length, 2, `one line: ${result.stderr}`);
    assert.doesNotMatch(result.stderr, /\\n|\. —|'/);
    return result.stderr;
  };
  const line = (message: string, hint: string) => `burrow: error: ${message} — ${hint}\n`;

  it('unknownCommand, with and without a suggestion, at the root and under a command', async () => {
    assert.equal(await usage(['tpc']), line(text.unknownCommand('tpc', ''), text.didYouMean('"burrow tcp"', 'burrow --help')));
    assert.equal(await usage(['zzzz']), line(text.unknownCommand('zzzz', ''), text.usageHint('burrow --help')));
    assert.equal(
      await usage(['cache', 'clera']),
      line(text.unknownCommand('clera', 'burrow cache'), text.didYouMean('"burrow cache clear"', 'burrow cache --help')),
    );
  });

  it('unknownOption', async () => {
    assert.equal(await usage(['tcp', 'a:1', '--lisen', ':1']), line(text.unknownOption('--lisen', 'burrow tcp'), text.didYouMean('--listen', 'burrow tcp --help')));
    assert.equal(await usage(['tcp', '-x']), line(text.unknownOption('-x', 'burrow tcp'), text.usageHint('burrow tcp --help')));
  });

  it('missingArgument', async () => {
    assert.equal(await usage(['tcp']), line(text.missingArgument('burrow tcp', '<destination>'), text.usageHint('burrow tcp --help')));
  });

  it('excessArguments', async () => {
    assert.equal(await usage(['tcp', 'a:1', 'b:2']), line(text.excessArguments('burrow tcp', 1, 2), text.excessArgumentsHint('burrow tcp --help')));
    assert.equal(await usage(['version', 'x']), line(text.excessArguments('burrow version', 0, 1), text.usageHint('burrow version --help')));
  });

  it('optionMissingArgument', async () => {
    assert.equal(await usage(['tcp', 'a:1', '--listen']), line(text.optionNeedsValue('--listen', '--listen <addr>'), text.usageHint('burrow tcp --help')));
  });

  it('invalidArgument: an option\'s choices and a command argument\'s', async () => {
    assert.equal(
      await usage(['tcp', 'a:1', '--transport', 'x']),
      line(text.invalidChoice('--transport', 'x', 'auto, connect or websocket'), text.usageHint('burrow tcp --help')),
    );
    assert.equal(await usage(['completion', 'tcsh']), line(text.invalidChoice('shell', 'tcsh', 'bash, zsh or fish'), text.usageHint('burrow completion --help')));
  });

  it('conflictingOption and anything else commander says (no burrow flag uses them: commander\'s real errors, in process)', () => {
    const raise = (configure: (c: Command) => void, argv: string[]): CommanderError => {
      const c = new Command('burrow').exitOverride().configureOutput({ writeErr: () => {}, outputError: () => {} });
      configure(c);
      try {
        c.parse(argv, { from: 'user' });
      } catch (error) {
        if (error instanceof CommanderError) return error;
        throw error;
      }
      throw new Error('commander did not fail');
    };
    const conflict = raise((c) => c.option('--aa').addOption(new Option('--bb').conflicts('aa')), ['--aa', '--bb']);
    assert.equal(conflict.code, 'commander.conflictingOption');
    const a = usageFromCommander(conflict, ['node', 'burrow', '--aa', '--bb'], undefined);
    assert.ok([text.conflictingFlags('--bb', '--aa'), text.conflictingFlags('--aa', '--bb')].includes(a.message), a.message);
    assert.equal(a.hint, text.conflictingFlagsHint);
    const mandatory = raise((c) => c.requiredOption('--cc <v>'), []);
    assert.equal(mandatory.code, 'commander.missingMandatoryOptionValue');
    const b = usageFromCommander(mandatory, ['node', 'burrow'], undefined);
    assert.doesNotMatch(b.message, /^error:|\.$|\n/);
    assert.equal(b.hint, text.usageHint('burrow --help'));
  });
});

describe('refused --header values, through the binary', () => {
  it('Authorization, X-Pomerium-Authorization, a _pomerium cookie and User-Agent: one whole sentence each, with its own hint', async () => {
    const cases: Array<[string, string, string]> = [
      ['Authorization: Bearer x', text.tokenHeader('Authorization'), text.tokenHeaderHint],
      ['X-Pomerium-Authorization: x', text.tokenHeader('X-Pomerium-Authorization'), text.tokenHeaderHint],
      ['Cookie: _pomerium=x', text.sessionCookieHeader('Cookie'), text.sessionCookieHeaderHint],
      ['User-Agent: x', text.userAgentHeader('User-Agent'), text.userAgentHeaderHint],
    ];
    for (const [header, message, hint] of cases) {
      for (const command of ['tcp', 'ssh-config']) {
        const result = await runBurrow([command, 'git.corp.example.com:22', ...(command === 'ssh-config' ? ['--host', 'git'] : []), '--header', header]);
        assert.equal(result.code, ExitCode.usage, result.stderr);
        assert.equal(result.stderr, `burrow: error: ${message} — ${hint}\n`);
      }
    }
  });
});

describe('commands that store nothing, on a machine without a keychain', () => {
  const STORE_ONLY = [['status'], ['logout'], ['cache', 'location'], ['cache', 'clear']];
  const busless = (bus: string | undefined): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH,
    HOME: tempDir('burrow-home-'),
    XDG_CACHE_HOME: tempDir('burrow-cache-'),
    NO_COLOR: '1',
    ...(bus === undefined ? {} : { DBUS_SESSION_BUS_ADDRESS: bus }),
  });
  const keychainWord = /keychain/i;

  it('say nothing about the keychain: D-Bus unset, or pointing nowhere', async () => {
    for (const bus of [undefined, 'unix:path=/nonexistent/burrow-test-bus']) {
      for (const args of STORE_ONLY) {
        const child = spawn(process.execPath, [BURROW_BIN, ...args], { env: busless(bus), stdio: ['ignore', 'pipe', 'pipe'] });
        let stderr = '';
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        child.stdout.resume();
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
        clearTimeout(timer);
        // status says with its exit code that nothing is signed in; the others succeed.
        assert.equal(code, args[0] === 'status' ? ExitCode.authRequired : 0, `${args.join(' ')}: ${stderr}`);
        assert.doesNotMatch(stderr, keychainWord, `${args.join(' ')} (bus ${bus ?? 'unset'})`);
      }
    }
  });

  it('the fallback line is said once, when a sign-in is first stored', async () => {
    const lines: string[] = [];
    const env = busless(undefined);
    const store = await selectStore({ env, warn: (line) => lines.push(line) });
    assert.equal(store.kind, 'file');
    await store.list();
    await store.get('https://proxy.corp.example.com:443');
    assert.deepEqual(lines, []);
    await store.set({ proxy: 'https://proxy.corp.example.com:443', token: 't', storedAt: Date.now() });
    await store.set({ proxy: 'https://other.corp.example.com:443', token: 't', storedAt: Date.now() });
    assert.equal(lines.length, 1);
    assert.equal(lines[0], text.keychainFallback('no D-Bus session: DBUS_SESSION_BUS_ADDRESS is not set', store.location()));
  });

  it('their help lists only the flags they use: the store, --json (logout: its browser)', async () => {
    for (const args of STORE_ONLY) {
      const result = await runBurrow([...args, '--help']);
      assert.equal(result.code, 0);
      const flags = [...result.stdout.toString('utf8').matchAll(/^ {2}(-[^ ]+)/gm)].map((m) => m[1]);
      const browser = args[0] === 'logout' ? ['--browser', '--browser-cmd', '--no-browser'] : [];
      assert.deepEqual(flags, [...browser, '--credential-store', '--json', '-h,'], args.join(' '));
    }
    for (const args of STORE_ONLY) {
      const result = await runBurrow([...args, '--login-timeout', '5']);
      assert.equal(result.code, ExitCode.usage, args.join(' '));
    }
  });
});

describe('the spinner on a terminal narrower than its line', () => {
  after(stopAllTerminals);

  it('is cut to the width, so it redraws one line in place', async () => {
    const world = await startWorld();
    try {
      const env = { PATH: process.env.PATH, HOME: process.env.HOME, XDG_CONFIG_HOME: tempDir('burrow-config-'), XDG_CACHE_HOME: tempDir('burrow-cache-'), BURROW_CREDENTIAL_STORE: 'file', TERM: 'xterm', NO_COLOR: '1' };
      for (const columns of [30, 12]) {
        // `true` as the browser: it "opens" and nobody signs in, so burrow waits with its spinner until --login-timeout.
        const login = [process.execPath, BURROW_BIN, 'login', world.proxy.url, '--alternate-ca-path', world.proxy.caPath, '--browser-cmd', 'true', '--login-timeout', '2'];
        const term = runInTerminal(['sh', '-c', `stty cols ${columns} rows 20; exec ${login.map(shQuote).join(' ')}`], env);
        const code = await term.exited;
        const screen = term.screen();
        assert.equal(code, ExitCode.authRequired, screen);
        const frames = screen.split('\r\x1b[K').filter((part) => /^[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/.test(part)).map((part) => part.split(/\r?\n/)[0]!);
        assert.ok(frames.length >= 5, `spinner frames at ${columns} columns: ${JSON.stringify(screen)}`);
        for (const frame of frames) assert.ok([...frame].length <= columns - 1, `${JSON.stringify(frame)} fits ${columns} columns`);
        if (columns === 30) assert.ok(frames.some((f) => f.includes('…') && / \d+ s$/.test(f)), `cut with an ellipsis, the time kept: ${JSON.stringify(frames)}`);
      }
    } finally {
      await world.close();
    }
  });
});

describe('starting on a Node.js too old, or from a checkout never built', () => {
  const bin = createRequire(import.meta.url)(BURROW_BIN) as { unsupportedNode(version: string): string | undefined; MINIMUM_NODE: number[] };
  const spawnNode = async (args: string[], options: { env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> => {
    const env = { PATH: process.env.PATH, HOME: process.env.HOME, XDG_CONFIG_HOME: tempDir('burrow-config-'), XDG_CACHE_HOME: tempDir('burrow-cache-'), ...options.env };
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    clearTimeout(timer);
    return { code, stdout, stderr };
  };

  it('the minimum is package.json\'s engines range', () => {
    const engines = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
    assert.equal(engines, `>=${bin.MINIMUM_NODE.join('.')}`);
  });

  it('compares versions as numbers', () => {
    for (const old of ['18.19.0', '20.18.0', 'v20.9.0', '16.20.2', '0.12.18', '20.17.99']) assert.ok(bin.unsupportedNode(old)?.includes(`this is Node.js ${old}`), old);
    for (const fine of ['20.18.1', '20.18.10', '20.20.2', '21.0.0', 'v22.11.0', '100.0.0']) assert.equal(bin.unsupportedNode(fine), undefined, fine);
  });

  it('an old Node.js (no old node on this machine: process.versions.node made 18.19.0 by a --require preload) gets one line, exit 1', async () => {
    const dir = tempDir('burrow-old-node-');
    const preload = join(dir, 'old-node.cjs');
    writeFileSync(preload, "Object.defineProperty(process, 'versions', { value: { ...process.versions, node: '18.19.0' } });\n");
    const result = await spawnNode(['--require', preload, BURROW_BIN, 'version']);
    assert.equal(result.code, 1);
    assert.equal(result.stdout, '');
    assert.equal(result.stderr, `${bin.unsupportedNode('18.19.0')}\n`);
    assert.match(result.stderr, /^burrow: error: burrow needs Node\.js 20\.18\.1 or newer, and this is Node\.js 18\.19\.0 .* — install a newer Node\.js/);
  });

  it('a clone never built (no dist/), or built by half (no bundle, or no YAML part): one line naming the fix, exit 1', async () => {
    const root = tempDir('burrow-unbuilt-');
    mkdirSync(join(root, 'bin'));
    copyFileSync(BURROW_BIN, join(root, 'bin', 'burrow.js'));
    copyFileSync(join(repoRoot, 'bin', 'package.json'), join(root, 'bin', 'package.json'));
    const none = await spawnNode([join(root, 'bin', 'burrow.js'), 'version']);
    assert.equal(none.code, 1);
    assert.equal(none.stderr, `burrow: error: burrow is not built: ${join('dist', 'bin', 'loader.cjs')} is missing — run "npm run build" in ${root} (or "npm ci", which builds too) and run burrow again\n`);
    mkdirSync(join(root, 'dist', 'bin'), { recursive: true });
    copyFileSync(join(repoRoot, 'dist', 'bin', 'loader.cjs'), join(root, 'dist', 'bin', 'loader.cjs'));
    const half = await spawnNode([join(root, 'bin', 'burrow.js'), 'version']);
    assert.equal(half.code, 1);
    assert.equal(half.stderr, `burrow: error: burrow is not built: ${join('dist', 'bin', 'burrow.cjs')} is missing — run "npm run build" in ${root} (or "npm ci", which builds too) and run burrow again\n`);
    // The bundle without its YAML part: fine until there is a config file to read.
    copyFileSync(join(repoRoot, 'dist', 'bin', 'burrow.cjs'), join(root, 'dist', 'bin', 'burrow.cjs'));
    const config = tempDir('burrow-unbuilt-config-');
    mkdirSync(join(config, 'burrow'));
    writeFileSync(join(config, 'burrow', 'config.yaml'), 'defaults:\n  log-level: debug\n');
    const noConfig = await spawnNode([join(root, 'bin', 'burrow.js'), 'version']);
    assert.equal(noConfig.code, 0, noConfig.stderr);
    const noPart = await spawnNode([join(root, 'bin', 'burrow.js'), 'config', 'check'], { env: { XDG_CONFIG_HOME: config } });
    assert.equal(noPart.code, 1);
    assert.equal(noPart.stderr, `burrow: error: burrow is not built: ${join('dist', 'bin', 'yaml.cjs')} is missing — run "npm run build" in ${root} (or "npm ci", which builds too) and run burrow again\n`);
  });
});
