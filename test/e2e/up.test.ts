/**
 * burrow up end to end: the real CLI serving the tunnels of a real config file in one process,
 * in front of the local identity-aware proxy: `git clone` over ssh to a real sshd through one
 * tunnel, TCP and UDP echoes through others, one browser sign-in for all of them; SIGHUP with
 * connections open (the unchanged tunnel's keeps its bytes, the removed one's is closed with a
 * line), a file that does not read (the running set stays), a port taken; refusals at start-up;
 * and the service files it prints, checked by systemd's own verifier and by plistlib.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { text } from '../../src/output/messages.js';
import { browserLaunches, followBrowser } from '../helpers/browsers/index.js';
import { runBurrow, spawnBurrow, stopAll, tempDir, type BurrowProcess } from '../helpers/burrow.js';
import { payload, sha256 } from '../helpers/data.js';
import { echoThrough } from '../helpers/echo-server.js';
import { type BareRepo, createBareRepo, git } from '../helpers/git-repo.js';
import { freePort } from '../helpers/processes.js';
import { run, type Sshd, shQuote, startSshd, stopAllCommands } from '../helpers/sshd.js';
import { cacheToken, testUser } from '../helpers/user.js';
import { DEST, eventually, startWorld, type World } from '../helpers/world.js';

const SYSTEMD_ANALYZE = '/usr/bin/systemd-analyze';
const PYTHON = '/usr/bin/python3';

/** Lines of a `--json` stderr, parsed. */
function events(stderr: string): Array<Record<string, unknown>> {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** `burrow up` started, with the `<name> <address>` lines it printed on stdout so far. */
interface Up extends BurrowProcess {
  addresses(): Map<string, string>;
  port(name: string): number;
}

function spawnUp(args: string[], env: NodeJS.ProcessEnv, wrapper?: string[]): Up {
  const proc = spawnBurrow(['up', ...args], { env, wrapper });
  const addresses = () => new Map(proc.stdoutText().split('\n').filter(Boolean).map((line) => line.split(' ') as [string, string]));
  return Object.assign(proc, {
    addresses,
    port(name: string) {
      const address = addresses().get(name);
      assert.ok(address, `no address printed for ${name}; stdout: ${proc.stdoutText()}; stderr: ${proc.stderr()}`);
      return Number(address.slice(address.lastIndexOf(':') + 1));
    },
  });
}

/** One UDP datagram to `port` on loopback and its reply (bounded). */
async function udpExchange(port: number, data: Buffer, timeoutMs = 10_000): Promise<Buffer> {
  const socket = createSocket('udp4');
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no UDP reply from 127.0.0.1:${port} within ${timeoutMs} ms`)), timeoutMs);
      socket.once('message', (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      socket.send(data, port, '127.0.0.1');
    });
  } finally {
    socket.close();
  }
}

/** A held connection through a tunnel: write, then read back exactly as many bytes (bounded). */
async function holdOpen(port: number): Promise<{ socket: Socket; echo(data: string): Promise<string>; ended: Promise<void> }> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  let buffered = '';
  socket.setEncoding('utf8').on('data', (d: string) => (buffered += d));
  return {
    socket,
    ended,
    async echo(data) {
      buffered = '';
      socket.write(data);
      await eventually(() => buffered.length >= data.length, 15_000, `the echo of ${JSON.stringify(data)}`);
      return buffered;
    },
  };
}

/** Connects through a tunnel and echoes one byte: the socket held open, or null when the listener closed it (bounded). */
async function tryHold(port: number): Promise<Socket | null> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  return new Promise<Socket | null>((resolve) => {
    const done = (held: boolean) => {
      clearTimeout(timer);
      if (!held) socket.destroy();
      resolve(held ? socket : null);
    };
    const timer = setTimeout(() => done(false), 10_000);
    socket.once('connect', () => socket.write('x'));
    socket.once('data', () => done(true));
    socket.once('close', () => done(false));
  });
}

describe('burrow up: every tunnel of the config file in one process', () => {
  let world: World;
  let sshd: Sshd;
  let repo: BareRepo;
  let udpEcho: ReturnType<typeof createSocket>;
  let udpPort: number;
  let work: string;

  before(async () => {
    work = tempDir('burrow-up-');
    sshd = await startSshd();
    repo = await createBareRepo(join(work, 'srv'), { bigFileBytes: 4 * 1024 * 1024 });
    udpEcho = createSocket('udp4');
    udpEcho.on('message', (message, peer) => udpEcho.send(message, peer.port, peer.address));
    await new Promise<void>((resolve) => udpEcho.bind(0, '127.0.0.1', resolve));
    udpPort = (udpEcho.address() as AddressInfo).port;
    world = await startWorld({
      extraRoutes: [{ from: 'tcp+https://ssh.corp.test:22', to: `tcp://${sshd.address}` }],
    });
    world.proxy.addRoute({ from: 'udp+https://echo.corp.test:7', to: `udp://127.0.0.1:${udpPort}` });
    world.proxy.addRoute({ from: 'wss://ws.corp.test/echo', to: `tcp://${world.echo.address}` });
  }, { timeout: 120_000 });
  after(async () => {
    await stopAllCommands();
    await stopAll();
    await world?.close();
    await sshd?.stop();
    await new Promise<void>((resolve) => (udpEcho ? udpEcho.close(() => resolve()) : resolve()));
  }, { timeout: 60_000 });

  /** A config file in its own directory; `body` follows defaults pointing at the local proxy. */
  function configFile(body: string[], name = 'config.yaml'): string {
    const path = join(tempDir('burrow-up-config-'), name);
    write(path, body);
    return path;
  }
  function write(path: string, body: string[]): void {
    const defaults = ['defaults:', `  pomerium-url: ${world.proxy.url}`, `  alternate-ca-path: ${world.proxy.caPath}`, `  browser-cmd: ${followBrowser}`];
    writeFileSync(path, [...defaults, ...body, ''].join('\n'));
  }

  it('git clone, TCP, WebSocket and UDP echoes through four tunnels, one sign-in for all; every event names its tunnel', { timeout: 180_000 }, async () => {
    const user = testUser('burrow-up-user-');
    const config = configFile([
      'tunnels:',
      '  git:',
      '    destination: ssh.corp.test:22',
      '  echo:',
      `    destination: ${DEST}`,
      '    max-duration: 1h',
      '  dns:',
      '    destination: udp+https://echo.corp.test:7',
      '  ws:',
      `    destination: ${world.proxy.url.replace(/^https:/, 'wss:')}/echo`,
    ]);
    const signIns = world.proxy.stats.signIns;
    const up = spawnUp(['--json'], { ...user.env, BURROW_CONFIG: config });
    await eventually(() => up.addresses().size === 4, 15_000, () => `four addresses on stdout; stderr: ${up.stderr()}`);
    assert.deepEqual([...up.addresses().keys()], ['git', 'echo', 'dns', 'ws']);
    for (const address of up.addresses().values()) assert.match(address, /^127\.0\.0\.1:\d+$/);

    // The TCP, WebSocket and UDP tunnels need a token at the same moment: one sign-in serves all three.
    const data = payload(256 * 1024, 3);
    const [echoed, wsEchoed, reply] = await Promise.all([
      echoThrough(up.port('echo'), data, 60_000),
      echoThrough(up.port('ws'), data, 60_000),
      udpExchange(up.port('dns'), Buffer.from('datagram one'), 60_000),
    ]);
    assert.equal(sha256(echoed), sha256(data));
    assert.equal(sha256(wsEchoed), sha256(data));
    assert.equal(reply.toString(), 'datagram one');
    assert.equal(world.proxy.stats.signIns - signIns, 1, 'one sign-in for the three tunnels');
    assert.equal(browserLaunches(user.log).length, 1);

    // git clone over ssh through the third, with the same token.
    const gitPort = up.port('git');
    const sshConfig = sshd.sshConfigFile('', sshd.knownHostsFor([`[127.0.0.1]:${gitPort}`]));
    const dest = join(work, 'clone');
    await git(['clone', '-q', `ssh://${sshd.user}@127.0.0.1:${gitPort}${repo.path}`, dest], {
      env: { GIT_SSH_COMMAND: `ssh -F ${shQuote(sshConfig)}` },
      timeoutMs: 120_000,
    });
    assert.equal((await git(['rev-parse', 'HEAD'], { cwd: dest })).trim(), (await git(['rev-parse', 'HEAD'], { cwd: repo.path })).trim());
    assert.equal(world.proxy.stats.signIns - signIns, 1, 'still one sign-in');

    const all = events(up.stderr());
    const listening = all.filter((e) => e.event === 'listening');
    assert.deepEqual(listening.map((e) => e.tunnel), ['git', 'echo', 'dns', 'ws']);
    assert.deepEqual(listening.map((e) => e.transport), ['connect', 'connect', 'connect-udp', 'websocket']);
    for (const e of all.filter((e) => ['connecting', 'connected', 'closed', 'failed'].includes(String(e.event)))) {
      assert.ok(['git', 'echo', 'dns', 'ws'].includes(String(e.tunnel)), `a tunnel's event names it: ${JSON.stringify(e)}`);
    }
    for (const name of ['git', 'echo', 'dns', 'ws']) assert.ok(all.some((e) => e.event === 'connected' && e.tunnel === name), `${name} connected`);
    assert.ok(all.some((e) => e.event === 'log' && e.message === text.upStarted(4, 4) && e.tunnel === undefined));
    assert.equal(await up.stop('SIGTERM'), 0);
    assert.deepEqual(events(up.stderr()).filter((e) => e.event === 'shutdown').map((e) => e.tunnel).sort(), ['dns', 'echo', 'git', 'ws']);
  });

  it('SIGHUP: removed tunnels stop (their connections closed), new ones start, changed ones restart, the rest keep their connections', { timeout: 120_000 }, async () => {
    const user = testUser('burrow-up-reload-');
    cacheToken(user.cache, world.proxy.url, world.token);
    const [keepPort, gonePort, changedPort] = [await freePort(), await freePort(), await freePort()];
    const tunnel = (name: string, port: number, ...more: string[]) => [`  ${name}:`, `    destination: ${DEST}`, `    listen: 127.0.0.1:${port}`, ...more.map((m) => `    ${m}`)];
    const config = configFile(['tunnels:', ...tunnel('keep', keepPort), ...tunnel('gone', gonePort), ...tunnel('changed', changedPort, 'max-duration: 1h')]);
    const up = spawnUp([], { ...user.env, BURROW_CONFIG: config });
    await eventually(() => up.addresses().size === 3, 15_000, () => `three addresses; stderr: ${up.stderr()}`);

    const kept = await holdOpen(keepPort);
    assert.equal(await kept.echo('before the reload'), 'before the reload');
    const cut = await holdOpen(gonePort);
    assert.equal(await cut.echo('about to go'), 'about to go');

    write(config, ['tunnels:', ...tunnel('keep', keepPort), ...tunnel('changed', changedPort, 'max-duration: 2h'), '  fresh:', `    destination: ${DEST}`]);
    up.child.kill('SIGHUP');
    await eventually(() => up.stderr().includes(`reloaded ${config}`), 15_000, () => `the reload; stderr: ${up.stderr()}`);
    assert.match(up.stderr(), new RegExp(`reloaded ${config.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: 1 started, 1 stopped, 1 restarted, 1 unchanged`));
    assert.match(up.stderr(), /burrow: gone: stopping: it is no longer in the config file/);
    assert.match(up.stderr(), /burrow: changed: restarting: its settings changed/);

    // The unchanged tunnel's connection carries bytes as before; the removed one's was closed.
    assert.equal(await kept.echo('after the reload'), 'after the reload');
    await Promise.race([cut.ended, new Promise((_, reject) => setTimeout(() => reject(new Error('the removed tunnel kept its connection')), 10_000))]);
    assert.match(up.stderr(), /burrow: gone: shutting down \(1 open tunnel\)/);
    await assert.rejects(holdOpen(gonePort), /ECONNREFUSED/);
    await eventually(() => up.addresses().has('fresh'), 10_000, 'the new tunnel on stdout');
    assert.equal(await echoThrough(up.port('fresh'), Buffer.from('fresh one')).then(String), 'fresh one');
    assert.equal(await echoThrough(changedPort, Buffer.from('changed one')).then(String), 'changed one');

    // A file that does not read: the running set stays, and the line says where the mistake is.
    writeFileSync(config, 'tunnels:\n  keep:\n    destination: [not, a, string]\n');
    up.child.kill('SIGHUP');
    await eventually(() => up.stderr().includes('not reloaded'), 15_000, () => `the refusal; stderr: ${up.stderr()}`);
    assert.match(up.stderr(), /burrow: warning: not reloaded: .*config\.yaml:3: tunnels\.keep\.destination must be a string.*; the 3 running tunnels are left as they were/);
    assert.equal(await kept.echo('still here'), 'still here');
    kept.socket.destroy();
    assert.equal(await up.stop('SIGTERM'), 0);
  });

  it('a tunnel whose port is taken is reported and the others run; a reload starts it once the port is free', { timeout: 60_000 }, async () => {
    const user = testUser('burrow-up-taken-');
    cacheToken(user.cache, world.proxy.url, world.token);
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const taken = (blocker.address() as AddressInfo).port;
    const config = configFile(['tunnels:', '  busy:', `    destination: ${DEST}`, `    listen: 127.0.0.1:${taken}`, '  free:', `    destination: ${DEST}`]);
    const up = spawnUp([], { ...user.env, BURROW_CONFIG: config });
    await eventually(() => up.addresses().has('free'), 15_000, () => `the free tunnel; stderr: ${up.stderr()}`);
    assert.match(up.stderr(), new RegExp(`burrow: busy: error: cannot listen on 127\\.0\\.0\\.1:${taken}: address already in use`));
    assert.match(up.stderr(), /burrow: 1 of 2 tunnels up/);
    assert.equal(String(await echoThrough(up.port('free'), Buffer.from('works'))), 'works');
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
    up.child.kill('SIGHUP');
    await eventually(() => up.addresses().has('busy'), 15_000, () => `busy started on reload; stderr: ${up.stderr()}`);
    assert.match(up.stderr(), /1 started, 0 stopped, 0 restarted, 1 unchanged/);
    assert.equal(String(await echoThrough(taken, Buffer.from('now it works'))), 'now it works');
    assert.equal(await up.stop('SIGTERM'), 0);
  });

  it('one open-files budget for every listener: when one tunnel has taken it all, the next one refuses too, with a line', { timeout: 60_000 }, async () => {
    const user = testUser('burrow-up-budget-');
    cacheToken(user.cache, world.proxy.url, world.token);
    const config = configFile(['tunnels:', '  a:', `    destination: ${DEST}`, '  b:', `    destination: ${DEST}`]);
    const up = spawnUp([], { ...user.env, BURROW_CONFIG: config }, ['prlimit', '--nofile=64:64', '--']);
    const held: Socket[] = [];
    try {
      await eventually(() => up.addresses().size === 2, 15_000, () => `two addresses; stderr: ${up.stderr()}`);
      // Tunnels through a until the budget is spent (bounded: 64 descriptors hold fewer than 32 tunnels).
      for (let i = 0; i < 32; i++) {
        const socket = await tryHold(up.port('a'));
        if (socket === null) break;
        held.push(socket);
      }
      assert.ok(held.length >= 1 && held.length < 32, `a held ${held.length} tunnels under a limit of 64`);
      assert.equal(await tryHold(up.port('b')), null, 'b has no room left either');
      await eventually(() => /burrow: b: #\d+ 127\.0\.0\.1:\d+: |burrow: b: error: refused the connection/.test(up.stderr()), 5000, () => `b's refusal; ${up.stderr()}`);
      assert.match(up.stderr(), new RegExp(`burrow: b: error: refused the connection from 127\\.0\\.0\\.1:\\d+: ${held.length} tunnels are open, all that the open-files limit of 64 leaves room for`));
      assert.doesNotMatch(up.stderr(), /too many open files|EMFILE|\n\s+at /);
      // One tunnel of a closes: b has room again.
      held.pop()!.destroy();
      let socket: Socket | null = null;
      for (let i = 0; i < 50 && socket === null; i++) {
        await new Promise((r) => setTimeout(r, 100));
        socket = await tryHold(up.port('b'));
      }
      assert.ok(socket, 'b gets a tunnel once one of a closed');
      held.push(socket);
    } finally {
      for (const socket of held) socket.destroy();
      await up.stop('SIGTERM');
    }
  });

  it('refuses to start without tunnels, with an unknown name, with two tunnels on one port, or when none can listen', { timeout: 90_000 }, async () => {
    const user = testUser('burrow-up-refusals-');
    const cases: Array<{ body?: string[]; args?: string[]; line: RegExp }> = [
      { line: /^burrow: error: no tunnels to run: there is no config file at .*config\.yaml — add a tunnels: section/ },
      { body: [], line: /^burrow: error: no tunnels to run: .*config\.yaml has no tunnels: section — add a tunnels: section/ },
      {
        body: ['tunnels:', '  git:', `    destination: ${DEST}`],
        args: ['gti'],
        line: /^burrow: error: no tunnel named "gti" in .*config\.yaml \(it has git\) — name tunnels as they are/,
      },
      {
        body: ['tunnels:', '  a:', `    destination: ${DEST}`, '    listen: :2202', '  b:', `    destination: ${DEST}`, '    listen: 127.0.0.1:2202'],
        line: /^burrow: error: .*config\.yaml:11: tunnels\.b\.listen 127\.0\.0\.1:2202 is the address tunnels\.a \(line 8\) listens on — give each tunnel its own port/,
      },
    ];
    for (const { body, args, line } of cases) {
      const env = { ...user.env, XDG_CONFIG_HOME: tempDir('burrow-up-xdg-') };
      if (body) {
        mkdirSync(join(env.XDG_CONFIG_HOME, 'burrow'));
        write(join(env.XDG_CONFIG_HOME, 'burrow', 'config.yaml'), body);
      }
      const result = await runBurrow(['up', ...(args ?? [])], { env });
      assert.equal(result.code, 2, result.stderr);
      assert.equal(result.stdout.length, 0);
      assert.match(result.stderr, line);
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    }
    // Every tunnel's port taken: each says so, then the process ends with the listen error's code.
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    try {
      const port = (blocker.address() as AddressInfo).port;
      const config = configFile(['tunnels:', '  only:', `    destination: ${DEST}`, `    listen: 127.0.0.1:${port}`]);
      const result = await runBurrow(['up'], { env: { ...user.env, BURROW_CONFIG: config } });
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, /^burrow: only: error: cannot listen on .*address already in use.*\nburrow: error: no tunnel could start \(see above\)\n$/);
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  it('--print-service: a systemd user unit systemd-analyze accepts, a launchd agent plistlib reads', { timeout: 90_000 }, async () => {
    for (const [path, pkg] of [
      [SYSTEMD_ANALYZE, 'systemd'],
      [PYTHON, 'python3'],
    ] as const) {
      if (!existsSync(path)) throw new Error(`${path} not found: apt-get install ${pkg}${process.env.CI ? ' (.ci/run must install it)' : ''}`);
    }
    const config = configFile(['tunnels:', '  git:', `    destination: ${DEST}`]);
    const systemd = await runBurrow(['up', 'git', '--print-service', 'systemd'], { env: { BURROW_CONFIG: config } });
    assert.equal(systemd.code, 0, systemd.stderr);
    assert.match(systemd.stderr, /systemctl --user enable --now burrow\.service/);
    const unit = join(tempDir('burrow-up-unit-'), 'burrow.service');
    writeFileSync(unit, systemd.stdout);
    // Run asynchronously, in its own process group, killed (with whatever it forked) if it hangs.
    const verified = await run(SYSTEMD_ANALYZE, ['verify', unit], { timeoutMs: 30_000 });
    assert.equal(verified.code, 0, `${verified.stderr}\n${systemd.stdout}`);
    assert.equal(verified.stderr.trim(), '', 'no warnings');
    assert.match(systemd.stdout.toString(), new RegExp(`^ExecStart=${process.execPath.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} \\S+burrow\\S* up git$`, 'm'));
    assert.match(systemd.stdout.toString(), new RegExp(`^Environment="BURROW_CONFIG=${config.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}"$`, 'm'));

    const launchd = await runBurrow(['up', '--print-service', 'launchd'], { env: { BURROW_CONFIG: config, HOME: '/Users/alice' } });
    assert.equal(launchd.code, 0, launchd.stderr);
    const read = await run(PYTHON, ['-c', 'import json, plistlib, sys; print(json.dumps(plistlib.loads(sys.stdin.buffer.read())))'], { input: launchd.stdout, timeoutMs: 30_000 });
    assert.equal(read.code, 0, read.stderr);
    const plist = JSON.parse(read.stdout.toString('utf8')) as Record<string, unknown>;
    assert.equal(plist.Label, 'burrow.up');
    assert.deepEqual((plist.ProgramArguments as string[]).slice(-1), ['up']);
    assert.equal(plist.RunAtLoad, true);
    assert.deepEqual(plist.KeepAlive, { SuccessfulExit: false });
    assert.deepEqual(plist.EnvironmentVariables, { BURROW_CONFIG: config });
    assert.equal(plist.StandardErrorPath, '/Users/alice/Library/Logs/burrow.log');
  });
});
