/**
 * What burrow says while it runs, end to end: the real CLI against the local proxy and an echo
 * server. Per-connection events in listener mode (shown by default) and stdio mode (quiet by
 * default), the same events as JSON lines with --json (fields, byte counts, failures, usage
 * errors, sign-in), the sign-in spinner on a real pseudo-terminal only, and colours that follow
 * NO_COLOR, FORCE_COLOR and whether stderr is a terminal.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ExitCode } from '../../src/errors.js';
import { browserEnv, followBrowser } from '../helpers/browsers/index.js';
import { BURROW_BIN, runBurrow, spawnBurrow, startListener, stdioEcho, stopAll, storedTokens, tempDir } from '../helpers/burrow.js';
import { chunked, payload } from '../helpers/data.js';
import { runInTerminal, stopAllTerminals } from '../helpers/terminal.js';
import { DEST, eventually, startWorld, type World } from '../helpers/world.js';

type Event = Record<string, unknown> & { event: string; time: string };

const CONNECTION_FIELDS = ['conn', 'dest', 'event', 'peer', 'proxy', 'time', 'transport'];
const FAILURE_FIELDS = ['code', 'exit_code', 'hint', 'message'];
const keys = (e: object) => Object.keys(e).sort();
const ANSI = /\x1b\[[0-9;]*m/;
const SPINNER = /[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/;

/** Every line of `stderr` as a JSON event; fails on any line that is not one. */
function jsonEvents(stderr: string): Event[] {
  return stderr
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      let parsed: Event;
      try {
        parsed = JSON.parse(line) as Event;
      } catch {
        throw new assert.AssertionError({ message: `not a JSON line on stderr: ${line}` });
      }
      assert.equal(typeof parsed.event, 'string', line);
      assert.equal(new Date(parsed.time).toISOString(), parsed.time, `time is ISO 8601: ${line}`);
      return parsed;
    });
}

/**
 * Connects to a listener, sends `data`, half-closes, returns what came back and the local port.
 * With `failing`, the connection is expected to be cut (a tunnel that could not open): a reset
 * is then an answer, not an error.
 */
async function roundTrip(port: number, data: Buffer, failing = false): Promise<{ back: Buffer; localPort: number }> {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  const closed = new Promise<void>((resolve, reject) => {
    socket.once('close', () => resolve());
    socket.once('error', (error) => (failing ? undefined : reject(error)));
  });
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  const localPort = socket.localPort!;
  chunked(data).pipe(socket);
  await closed;
  return { back: Buffer.concat(chunks), localPort };
}

describe('observability', () => {
  let world: World;
  let proxy: string;
  before(async () => {
    world = await startWorld({
      extraRoutes: [{ from: 'tcp+https://bob-only.corp.test:22', to: 'tcp://127.0.0.1:1', allow: ['bob@corp.test'] }],
    });
    proxy = new URL(world.proxy.url).origin;
  });
  after(async () => {
    await stopAllTerminals();
    await stopAll();
    await world.close();
  });

  describe('listener mode', () => {
    it('shows connected and closed (time to connect, duration, bytes each way, reason) by default; connecting only with -v', async () => {
      const burrow = await startListener(world.tcpArgs().slice(1), { env: world.env });
      const data = payload(100_000, 3);
      const { back, localPort } = await roundTrip(burrow.port, data);
      assert.equal(back.length, data.length);
      await eventually(() => burrow.stderr().includes('closed after'), 10_000, 'the closed line');
      assert.equal(await burrow.stop(), 0);
      const lines = burrow.stderr().trim().split('\n');
      const peer = `127\\.0\\.0\\.1:${localPort}`;
      assert.match(lines[0]!, new RegExp(`^burrow: listening on ${burrow.address}, forwarding to ${DEST} via ${proxy}$`));
      assert.match(lines[1]!, new RegExp(`^burrow: #1 ${peer}: connected to ${DEST} in \\d+ ms$`));
      assert.match(lines[2]!, new RegExp(`^burrow: #1 ${peer}: closed after [0-9.]+ (ms|s), 98 KiB up, 98 KiB down \\(the local side closed\\)$`));
      assert.match(lines[3]!, /^burrow: shutting down \(0 open tunnels\)$/);
      assert.equal(lines.length, 4, burrow.stderr());

      const verbose = await startListener([...world.tcpArgs().slice(1), '-v'], { env: world.env });
      const second = await roundTrip(verbose.port, Buffer.from('hi'));
      await eventually(() => verbose.stderr().includes('closed after'), 10_000, 'the closed line');
      await verbose.stop();
      assert.match(verbose.stderr(), new RegExp(`^burrow: debug: #1 127\\.0\\.0\\.1:${second.localPort}: connecting to ${DEST} via ${proxy} \\(connect\\)$`, 'm'));
      assert.match(verbose.stderr(), /closed after .*, 2 B up, 2 B down/);
    });

    it('--json: every stderr line is an event with stable fields; counts are exact; a failure is an event; stdout is only the address', async () => {
      const burrow = await startListener([...world.tcpArgs().slice(1), '--json', '-v'], { env: world.env });
      const up = payload(300_000, 4);
      const first = await roundTrip(burrow.port, up);
      assert.equal(first.back.length, up.length);
      await eventually(() => burrow.stderr().includes('"closed"'), 10_000, 'the closed event');
      const events = jsonEvents(burrow.stderr());
      assert.deepEqual(
        events.map((e) => e.event),
        ['listening', 'connecting', 'connected', 'closed'],
      );
      const [listening, connecting, connected, closed] = events as [Event, Event, Event, Event];
      assert.deepEqual(keys(listening), ['address', 'dest', 'event', 'proxy', 'time', 'transport']);
      assert.equal(listening.address, burrow.address);
      assert.equal(listening.dest, DEST);
      assert.equal(listening.proxy, proxy);
      assert.equal(listening.transport, 'connect');
      assert.deepEqual(keys(connecting), CONNECTION_FIELDS);
      assert.deepEqual(keys(connected), [...CONNECTION_FIELDS, 'ms'].sort());
      assert.deepEqual(keys(closed), [...CONNECTION_FIELDS, 'bytes_down', 'bytes_up', 'ms', 'reason'].sort());
      for (const e of [connecting, connected, closed]) {
        assert.equal(e.conn, 1);
        assert.equal(e.peer, `127.0.0.1:${first.localPort}`);
        assert.equal(e.dest, DEST);
        assert.equal(e.proxy, proxy);
        assert.equal(e.transport, 'connect');
      }
      assert.ok(Number.isInteger(connected.ms) && (connected.ms as number) >= 0);
      assert.ok(Number.isInteger(closed.ms) && (closed.ms as number) >= 0);
      assert.equal(closed.bytes_up, up.length);
      assert.equal(closed.bytes_down, up.length);
      assert.equal(closed.reason, 'local_closed');

      // A second listener for a route this identity may not use: the failure is an event, the
      // listener keeps serving.
      const denied = await startListener([...world.tcpArgs('bob-only.corp.test:22').slice(1), '--json'], { env: world.env });
      await roundTrip(denied.port, Buffer.from('x'), true);
      await roundTrip(denied.port, Buffer.from('y'), true);
      await eventually(() => jsonEvents(denied.stderr()).filter((e) => e.event === 'failed').length === 2, 10_000, 'two failed events');
      const failed = jsonEvents(denied.stderr()).filter((e) => e.event === 'failed');
      assert.deepEqual(keys(failed[0]!), [...CONNECTION_FIELDS, ...FAILURE_FIELDS, 'ms'].sort());
      assert.equal(failed[0]!.code, 'BURROW_ACCESS_DENIED');
      assert.equal(failed[0]!.exit_code, ExitCode.accessDenied);
      assert.match(String(failed[0]!.message), /access denied by .* for bob-only\.corp\.test:22 \(HTTP 403/);
      assert.deepEqual(failed.map((e) => e.conn), [1, 2]);

      assert.equal(await burrow.stop(), 0);
      assert.equal(await denied.stop(), 0);
      const last = jsonEvents(burrow.stderr()).at(-1)!;
      assert.deepEqual({ event: last.event, open: last.open }, { event: 'shutdown', open: 0 });
      assert.equal(burrow.stdoutText(), `${burrow.address}\n`, 'stdout carries only the bound address');
      for (const out of [burrow.stderr(), denied.stderr()]) assert.ok(!out.includes(world.token), 'never the token');
    });
  });

  describe('stdio mode', () => {
    it('is quiet by default (it runs under ssh); -v shows the steps; --json gives the events with byte counts', async () => {
      const data = payload(200_000, 5);
      const quiet = await stdioEcho(world.tcpArgs(DEST, '--listen', '-'), world.env, data);
      assert.equal(quiet.code, 0, quiet.stderr);
      assert.equal(quiet.stderr, '', 'nothing on stderr when all is well');

      const verbose = await stdioEcho(world.tcpArgs(DEST, '--listen', '-', '-v'), world.env, data);
      assert.equal(verbose.code, 0, verbose.stderr);
      const lines = verbose.stderr.trim().split('\n');
      assert.match(lines[0]!, new RegExp(`^burrow: debug: #1 stdio: connecting to ${DEST} via ${proxy} \\(connect\\)$`));
      assert.match(lines[1]!, new RegExp(`^burrow: #1 stdio: connected to ${DEST} in \\d+ ms$`));
      assert.match(lines[2]!, /^burrow: #1 stdio: closed after [0-9.]+ (ms|s), 195 KiB up, 195 KiB down \(the local side closed\)$/);
      assert.equal(lines.length, 3, verbose.stderr);

      const json = await stdioEcho(world.tcpArgs(DEST, '--listen', '-', '--json'), world.env, data);
      assert.equal(json.code, 0, json.stderr);
      assert.equal(json.stdout.length, data.length, 'stdout carries the tunnel, nothing else');
      const events = jsonEvents(json.stderr);
      assert.deepEqual(events.map((e) => e.event), ['connected', 'closed']);
      const closed = events[1]!;
      assert.deepEqual(
        { conn: closed.conn, peer: closed.peer, up: closed.bytes_up, down: closed.bytes_down, reason: closed.reason },
        { conn: 1, peer: 'stdio', up: data.length, down: data.length, reason: 'local_closed' },
      );
    });

    it('--json failure: one failed event with code and exit code, and the same exit code', async () => {
      const result = await runBurrow(world.tcpArgs('nowhere.corp.test:22', '--listen', '-', '--json'), { env: world.env });
      assert.equal(result.code, ExitCode.routeNotFound);
      const events = jsonEvents(result.stderr);
      assert.deepEqual(events.map((e) => e.event), ['failed']);
      assert.deepEqual(keys(events[0]!), [...CONNECTION_FIELDS, ...FAILURE_FIELDS, 'ms'].sort());
      assert.equal(events[0]!.code, 'BURROW_ROUTE_NOT_FOUND');
      assert.equal(events[0]!.exit_code, ExitCode.routeNotFound);
      assert.ok(!result.stderr.includes(world.token));
    });

    it('--json broken tunnel: closed with reason broken, the failure fields, exit 10', async () => {
      const w = await startWorld();
      try {
        const proc = spawnBurrow(w.tcpArgs(DEST, '--listen', '-', '--json'), { env: w.env, collectStdout: false });
        let echoed = '';
        proc.child.stdout.setEncoding('utf8').on('data', (d: string) => (echoed += d));
        proc.child.stdin.write('ping');
        await eventually(() => echoed === 'ping', 10_000, 'the echo');
        await w.proxy.close({ reset: true });
        assert.equal(await proc.exited, ExitCode.tunnelBroken);
        const closed = jsonEvents(proc.stderr()).at(-1)!;
        assert.deepEqual(
          { event: closed.event, reason: closed.reason, code: closed.code, exit_code: closed.exit_code, up: closed.bytes_up, down: closed.bytes_down },
          { event: 'closed', reason: 'broken', code: 'BURROW_TUNNEL_BROKEN', exit_code: ExitCode.tunnelBroken, up: 4, down: 4 },
        );
        assert.match(String(closed.message), /broke: connection reset/);
      } finally {
        await w.close();
      }
    });

    it('--json sign-in: sign_in_required, sign_in with the address, connected; never the token', async () => {
      const cache = tempDir('burrow-obs-');
      const env = { XDG_CACHE_HOME: cache, ...browserEnv({}) };
      const result = await runBurrow([...world.tcpArgs(DEST, '--listen', '-', '--json'), '--browser-cmd', followBrowser], { env, input: 'hello' });
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout.toString(), 'hello');
      const events = jsonEvents(result.stderr);
      assert.deepEqual(events.map((e) => e.event), ['sign_in_required', 'sign_in', 'connected', 'closed']);
      assert.equal(events[0]!.status, 302);
      assert.deepEqual(keys(events[0]!), [...CONNECTION_FIELDS, 'status'].sort());
      const signIn = events[1]!;
      assert.deepEqual(keys(signIn), ['browser_opened', 'event', 'proxy', 'time', 'url', 'wait_s']);
      assert.deepEqual([signIn.proxy, signIn.browser_opened, signIn.wait_s], [world.proxy.url, true, 300]);
      // The address the browser was sent to: the proxy's sign-in page, back to burrow's callback.
      const url = new URL(String(signIn.url));
      assert.equal(url.origin, world.proxy.url);
      assert.match(url.searchParams.get('pomerium_redirect_uri') ?? '', /^http:\/\/127\.0\.0\.1:\d+\//);

      // --no-browser: the same event says the address was not opened; the wait line follows.
      // On a terminal (a real pty): without one nobody could sign in, and burrow would not wait.
      const printed = runInTerminal(
        [process.execPath, BURROW_BIN, ...world.tcpArgs(DEST, '--listen', '-', '--json'), '--no-browser', '--login-timeout', '60'],
        { PATH: process.env.PATH, HOME: process.env.HOME, XDG_CONFIG_HOME: tempDir('burrow-config-'), XDG_CACHE_HOME: tempDir('burrow-obs-'), BURROW_CREDENTIAL_STORE: 'file', NO_COLOR: '1', TERM: 'dumb' },
      );
      await eventually(() => printed.screen().includes('"event":"log"'), 10_000, () => `the sign-in lines; the terminal shows: ${printed.screen()}`);
      const lines = jsonEvents(printed.screen().replace(/\r/g, ''));
      assert.deepEqual(lines.map((e) => e.event), ['sign_in_required', 'sign_in', 'log']);
      assert.deepEqual([lines[1]!.browser_opened, lines[1]!.wait_s], [false, 60]);
      assert.equal(new URL(String(lines[1]!.url)).origin, world.proxy.url);
      assert.match(String(lines[2]!.message), /waiting up to 60 s/);
      printed.write('\x03'); // Ctrl-C
      assert.equal(await printed.exited, ExitCode.interrupted);
      const [token] = storedTokens(cache);
      assert.ok(token, 'signed in');
      assert.ok(!result.stderr.includes(token!), 'the token is in no field');
    });
  });

  describe('errors before any connection', () => {
    it('--json turns usage errors (ours and the parser\'s) into one error event', async () => {
      const bad = await runBurrow(['tcp', 'git.corp.test', '--listen', '-', '--json']);
      assert.equal(bad.code, ExitCode.usage);
      const [event] = jsonEvents(bad.stderr);
      assert.deepEqual(keys(event!), ['code', 'event', 'exit_code', 'hint', 'message', 'time']);
      assert.deepEqual({ event: event!.event, code: event!.code, exit_code: event!.exit_code }, { event: 'error', code: 'BURROW_INVALID_DESTINATION', exit_code: 2 });

      const unknown = await runBurrow(['tcp', 'git.corp.test:22', '--json', '--bogus']);
      assert.equal(unknown.code, ExitCode.usage);
      assert.deepEqual(
        jsonEvents(unknown.stderr).map((e) => [e.event, e.code]),
        [['error', 'BURROW_USAGE']],
      );
    });
  });

  describe('spinner while waiting for the browser', () => {
    /** Listener mode needing a sign-in whose browser takes 1.5 s; one connection through it. */
    async function signInThrough(extra: string[], run: 'terminal' | 'pipe'): Promise<string> {
      const cache = tempDir('burrow-obs-');
      const env = {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        XDG_CONFIG_HOME: tempDir('burrow-config-'),
        XDG_CACHE_HOME: cache,
        BURROW_CREDENTIAL_STORE: 'file',
        TERM: 'xterm',
        ...browserEnv({ delayMs: 1500 }),
      };
      const args = [...world.tcpArgs().slice(1), '--browser-cmd', followBrowser, ...extra];
      if (run === 'pipe') {
        const burrow = await startListener(args, { env });
        const { back } = await roundTrip(burrow.port, Buffer.from('via pipe'));
        assert.equal(back.toString(), 'via pipe', burrow.stderr());
        await burrow.stop();
        return burrow.stderr();
      }
      const term = runInTerminal([process.execPath, BURROW_BIN, 'tcp', ...args], env);
      try {
        await eventually(() => /127\.0\.0\.1:(\d+)\r?\n/.test(term.screen()), 15_000, 'the listener address');
        const port = Number(/127\.0\.0\.1:(\d+)\r?\n/.exec(term.screen())![1]);
        const { back } = await roundTrip(port, Buffer.from('via terminal'));
        assert.equal(back.toString(), 'via terminal', term.screen());
        await eventually(() => term.screen().includes('closed'), 10_000, 'the closed event');
        return term.screen();
      } finally {
        await term.stop();
      }
    }

    it('turns on a terminal, then clears its line before the next message', async () => {
      const screen = await signInThrough([], 'terminal');
      const spin = screen.indexOf('waiting for the sign-in in your browser');
      assert.ok(spin > 0, screen);
      assert.match(screen, SPINNER);
      const frames = screen.split('\r\x1b[K').filter((part) => part.includes('waiting for the sign-in in your browser'));
      assert.ok(frames.length >= 5, `redrawn in place (${frames.length} frames in 1.5 s)`);
      // After the sign-in the line is cleared, and the connected line follows on a clean line.
      assert.match(screen, /\r\x1b\[Kburrow: (\x1b\[2m)?#1 127\.0\.0\.1:\d+: (\x1b\[22m)?connected to/);
    });

    it('stays off when stderr is not a terminal, and with --json on a terminal', async () => {
      const piped = await signInThrough([], 'pipe');
      assert.match(piped, /opened your browser/);
      assert.doesNotMatch(piped, SPINNER);
      assert.ok(!piped.includes('\r'), 'no carriage returns in a log');

      const json = await signInThrough(['--json'], 'terminal');
      assert.doesNotMatch(json, SPINNER);
      const lines = json.split(/\r?\n/).filter((l) => l.trim() !== '' && !/^127\.0\.0\.1:\d+$/.test(l.trim()));
      for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), `a JSON line: ${JSON.stringify(line)}`);
    });
  });

  describe('colours', () => {
    const badDestination = ['tcp', 'git.corp.test', '--listen', '-'];

    it('none on a pipe by default or with NO_COLOR; FORCE_COLOR=1 forces them, even over NO_COLOR', async () => {
      const plain = await runBurrow(badDestination, { env: { NO_COLOR: undefined } });
      assert.equal(plain.code, ExitCode.usage);
      assert.doesNotMatch(plain.stderr, ANSI);

      const noColor = await runBurrow(badDestination, { env: { NO_COLOR: '1' } });
      assert.doesNotMatch(noColor.stderr, ANSI);

      const forced = await runBurrow(badDestination, { env: { NO_COLOR: undefined, FORCE_COLOR: '1' } });
      assert.match(forced.stderr, ANSI);
      assert.equal(forced.stderr.replace(/\x1b\[[0-9;]*m/g, ''), plain.stderr, 'the same words');

      const both = await runBurrow(badDestination, { env: { NO_COLOR: '1', FORCE_COLOR: '1' } });
      assert.match(both.stderr, ANSI);

      const forcedOff = await runBurrow(badDestination, { env: { NO_COLOR: undefined, FORCE_COLOR: '0' } });
      assert.doesNotMatch(forcedOff.stderr, ANSI);
    });

    it('on a terminal: colours by default, none with NO_COLOR or FORCE_COLOR=0', async () => {
      const env = (extra: NodeJS.ProcessEnv) => ({ PATH: process.env.PATH, HOME: process.env.HOME, XDG_CONFIG_HOME: tempDir('burrow-config-'), TERM: 'xterm', ...extra });
      const screens: Record<string, string> = {};
      for (const [name, extra] of Object.entries({ tty: {}, noColor: { NO_COLOR: '1' }, forceOff: { FORCE_COLOR: '0' } })) {
        const term = runInTerminal([process.execPath, BURROW_BIN, ...badDestination], env(extra));
        assert.equal(await term.exited, ExitCode.usage);
        screens[name] = term.screen();
        assert.match(screens[name]!, /invalid destination/);
      }
      assert.match(screens.tty!, ANSI);
      assert.doesNotMatch(screens.noColor!, ANSI);
      assert.doesNotMatch(screens.forceOff!, ANSI);
    });

    it('listener event lines are coloured only when asked: FORCE_COLOR=1 on a pipe', async () => {
      const burrow = await startListener(world.tcpArgs().slice(1), { env: { ...world.env, NO_COLOR: undefined, FORCE_COLOR: '1' } });
      await roundTrip(burrow.port, Buffer.from('c'));
      await eventually(() => burrow.stderr().includes('closed after'), 10_000, 'the closed line');
      await burrow.stop();
      assert.match(burrow.stderr(), /\x1b\[2m#1 127\.0\.0\.1:\d+: \x1b\[22mconnected to/);
      assert.equal(burrow.stdoutText(), `${burrow.address}\n`, 'stdout never coloured');
    });
  });
});
