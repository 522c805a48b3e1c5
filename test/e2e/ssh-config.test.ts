/**
 * `burrow ssh-config` with the destination forms and flags it passes on, for real: the printed
 * block is written to a file as is and used with the OpenSSH client (`ssh -F <file>`) and
 * `git clone`, against a test sshd behind
 * - the local proxy's WebSocket route (`wss://localhost:PORT/ssh`, --transport websocket), and
 *   Debian's websockify in front of the same sshd;
 * - the local proxy's CONNECT route through a fixed `tcp+https://localhost:PORT/git.corp.test:22`;
 * each with --header, --connect-timeout and (WebSocket) --ping-interval, which the proxy must see
 * (the header on every request, pings while ssh is idle) and a proxy that never answers must
 * feel (the timeout). One user signs in once through the scripted browser; every later burrow
 * reuses the token. Only loopback addresses.
 *
 * When sshd, ssh, git or websockify is missing these tests fail with the package to install
 * (never skip).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { browserEnv, browserLaunches, followBrowser } from '../helpers/browsers/index.js';
import { runBurrow, stopAll, tempDir } from '../helpers/burrow.js';
import { type FakePomerium, startFakePomerium } from '../helpers/fake-pomerium.js';
import { type BareRepo, createBareRepo, git } from '../helpers/git-repo.js';
import { proxyCommand } from '../helpers/proxy-command.js';
import { missingSshTools, run, type RunResult, shQuote, type Sshd, startSshd, stopAllCommands } from '../helpers/sshd.js';
import { requireWebsockify, startWebsockify, stopAllWebsockify, type Websockify } from '../helpers/websockify.js';

const MiB = 1024 * 1024;
/** Header values are secrets to burrow: they must reach the proxy and never be printed. */
const API_KEY = 'k-ssh-config-7c1e-never-printed';

async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

describe('burrow ssh-config output with ssh -F and git clone (real OpenSSH, git, websockify)', () => {
  let sshd: Sshd;
  let proxy: FakePomerium;
  /** Accepts CONNECTs and upgrades and never answers them. */
  let silent: FakePomerium;
  let gateway: Websockify;
  let repo: BareRepo;
  let work: string;
  let env: NodeJS.ProcessEnv;
  let browserLog: string;
  let knownHosts: string;

  before(async () => {
    const missing = missingSshTools();
    if (missing) throw new Error(missing);
    requireWebsockify();
    work = tempDir('burrow-ssh-config-');
    sshd = await startSshd();
    proxy = await startFakePomerium({
      routes: [
        { from: 'tcp+https://git.corp.test:22', to: `tcp://${sshd.address}` },
        { from: 'wss://ws.corp.test/ssh', to: `tcp://${sshd.address}` },
      ],
    });
    silent = await startFakePomerium({
      stallConnect: true,
      routes: [
        { from: 'tcp+https://git.corp.test:22', to: `tcp://${sshd.address}` },
        { from: 'wss://ws.corp.test/ssh', to: `tcp://${sshd.address}` },
      ],
    });
    gateway = await startWebsockify({ target: sshd.address, tls: true });
    browserLog = join(work, 'browser.log');
    env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      XDG_CACHE_HOME: join(work, 'cache'),
      BURROW_CREDENTIAL_STORE: 'file',
      NO_COLOR: '1',
      ...browserEnv({ log: browserLog }),
    };
    knownHosts = sshd.knownHostsFor(['ws-git.corp.test', 'fixed-git.corp.test', 'gw-git.corp.test', 'slow-ws.corp.test', 'slow-fixed.corp.test', 'mux-git.corp.test']);
    mkdirSync(join(work, 'srv'));
    repo = await createBareRepo(join(work, 'srv'), { bigFileBytes: 8 * MiB });
  });

  after(async () => {
    await stopAllCommands();
    await stopAll();
    await stopAllWebsockify();
    await silent?.close();
    await proxy?.close();
    await sshd?.stop();
  });

  /** The wss:// URL of `path` on a local proxy. */
  const wssOf = (p: FakePomerium, path: string) => `${p.url.replace(/^https:/, 'wss:')}${path}`;

  /** Runs `burrow ssh-config <args>` and writes its stdout, untouched, to a file for `ssh -F`. */
  async function sshConfigFile(name: string, args: string[]): Promise<{ file: string; block: string }> {
    const out = await runBurrow(['ssh-config', ...args], { env });
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stderr, '');
    const block = out.stdout.toString('utf8');
    const file = join(work, `ssh-config-${name}`);
    writeFileSync(file, block);
    return { file, block };
  }

  /**
   * ssh's own options besides the file: only the test's safety options (key, known hosts, no
   * prompts or agents); the User and the ProxyCommand come from the file.
   */
  function sshArgs(file: string, own: { controlPath: boolean } = { controlPath: false }): string[] {
    return [
      '-F', file,
      '-i', sshd.clientKey,
      '-o', `UserKnownHostsFile=${knownHosts}`,
      '-o', 'GlobalKnownHostsFile=/dev/null',
      '-o', 'StrictHostKeyChecking=yes',
      '-o', 'IdentitiesOnly=yes',
      '-o', 'IdentityAgent=none',
      '-o', 'BatchMode=yes',
      // The file's ControlPath (--multiplex), or none: no test shares another's connection.
      ...(own.controlPath ? [] : ['-o', 'ControlPath=none']),
    ];
  }

  function ssh(file: string, args: string[], timeoutMs = 60_000): Promise<RunResult> {
    return run('ssh', [...sshArgs(file), ...args], { env, timeoutMs });
  }

  function diag(stderr: string, block: string): string {
    return `${stderr}\n--- config ---\n${block}\n--- sshd log (last lines) ---\n${sshd.log().split('\n').slice(-20).join('\n')}`;
  }

  /** `git clone <host>:<repo>` with GIT_SSH_COMMAND="ssh -F <file> …"; checks the clone against the server. */
  async function cloneAndVerify(host: string, file: string, block: string): Promise<void> {
    const dest = join(work, `clone-${host}`);
    try {
      await git(['clone', '-q', `${host}:${repo.path}`, dest], { env: { ...env, GIT_SSH_COMMAND: ['ssh', ...sshArgs(file)].map(shQuote).join(' ') }, timeoutMs: 120_000 });
    } catch (error) {
      throw new Error(diag((error as Error).message, block), { cause: error });
    }
    assert.equal((await git(['rev-parse', 'HEAD'], { cwd: dest })).trim(), repo.head, 'HEAD of the clone is the server HEAD');
    assert.equal(await fileSha256(join(dest, repo.bigFile)), repo.bigFileSha256, `${repo.bigFile} arrived intact`);
  }

  /** The recorded requests of `proxy` for `url` (a CONNECT authority or an upgrade's path) since `from`. */
  const requestsFor = (url: string, from: number) => proxy.requests.slice(from).filter((r) => r.url === url);

  it('wss:// through the local proxy with --transport websocket, --header, --connect-timeout, --ping-interval: git clone and an idle ssh', { timeout: 180_000 }, async () => {
    const url = wssOf(proxy, '/ssh');
    const { file, block } = await sshConfigFile('wss', [
      url, '--host', 'ws-git.corp.test', '--user', sshd.user,
      '--transport', 'websocket', '--header', `X-Api-Key: ${API_KEY}`, '--header', 'X-Team: blue team',
      '--connect-timeout', '20', '--ping-interval', '0.2',
      '--alternate-ca-path', proxy.caPath, '--browser-cmd', followBrowser,
    ]);
    assert.match(block, /^Host ws-git\.corp\.test$/m);
    const command = proxyCommand(block);
    assert.ok(command.includes(` tcp --listen - ${url} `), command);
    assert.ok(!command.includes('%h:%p'), 'a fixed destination, not ssh\'s host and port');
    for (const part of ['--connect-timeout 20', '--transport websocket', '--ping-interval 0.2', `--header 'X-Api-Key: ${API_KEY}'`, "--header 'X-Team: blue team'"]) {
      assert.ok(command.includes(part), `${part} in ${command}`);
    }

    const from = proxy.requests.length;
    await cloneAndVerify('ws-git.corp.test', file, block);
    assert.equal(browserLaunches(browserLog).length, 1, 'the first burrow signed in through the browser');

    // An idle session: nothing but keepalive pings crosses the tunnel for 1.5 s.
    const pings = proxy.stats.pingsReceived;
    const r = await ssh(file, ['ws-git.corp.test', 'sleep 1.5; echo ok']);
    assert.equal(r.code, 0, diag(r.stderr, block));
    assert.equal(r.stdout.toString(), 'ok\n');
    assert.ok(proxy.stats.pingsReceived - pings >= 3, `${proxy.stats.pingsReceived - pings} pings in 1.5 s at --ping-interval 0.2`);
    assert.ok(!r.stderr.includes(API_KEY), r.stderr);

    const upgrades = requestsFor('/ssh', from);
    assert.ok(upgrades.length >= 2, `the clone and the ssh each upgraded: ${upgrades.length}`);
    for (const u of upgrades) {
      assert.equal(u.method, 'GET');
      assert.equal(u.headers['x-api-key'], API_KEY, 'every upgrade carried the header');
      assert.equal(u.headers['x-team'], 'blue team');
    }
  });

  it('tcp+https://proxy/git.corp.test:22 through the local proxy with --header and --connect-timeout: git clone', { timeout: 180_000 }, async () => {
    const destination = `tcp+https://localhost:${proxy.port}/git.corp.test:22`;
    const { file, block } = await sshConfigFile('fixed', [
      destination, '--host', 'fixed-git.corp.test', '--user', sshd.user,
      '--header', `X-Api-Key: ${API_KEY}`, '--connect-timeout', '20',
      '--alternate-ca-path', proxy.caPath, '--browser-cmd', followBrowser,
    ]);
    assert.match(block, /^Host fixed-git\.corp\.test$/m);
    const command = proxyCommand(block);
    assert.ok(command.includes(` tcp --listen - ${destination} --connect-timeout 20 --header 'X-Api-Key: ${API_KEY}' `), command);

    const from = proxy.requests.length;
    await cloneAndVerify('fixed-git.corp.test', file, block);
    const connects = requestsFor('git.corp.test:22', from);
    assert.ok(connects.length >= 1, 'the clone CONNECTed to the fixed destination, not to fixed-git.corp.test');
    for (const c of connects) {
      assert.equal(c.method, 'CONNECT');
      assert.equal(c.headers['x-api-key'], API_KEY);
    }
    assert.deepEqual(requestsFor('fixed-git.corp.test:22', from), []);
  });

  it('wss:// through websockify (a gateway burrow did not write) with --transport websocket, --header, --connect-timeout, --ping-interval', { timeout: 60_000 }, async () => {
    const { file, block } = await sshConfigFile('websockify', [
      gateway.url, '--host', 'gw-git.corp.test', '--user', sshd.user,
      '--transport', 'websocket', '--header', `X-Api-Key: ${API_KEY}`, '--connect-timeout', '20', '--ping-interval', '0.3',
      '--alternate-ca-path', proxy.caPath,
    ]);
    const command = proxyCommand(block);
    assert.ok(command.includes(` tcp --listen - ${gateway.url} --connect-timeout 20 --transport websocket --ping-interval 0.3 --header 'X-Api-Key: ${API_KEY}' `), command);
    const r = await ssh(file, ['gw-git.corp.test', 'sleep 1; echo ok']);
    assert.equal(r.code, 0, `${diag(r.stderr, block)}\n--- websockify ---\n${gateway.log().slice(-2000)}`);
    assert.equal(r.stdout.toString(), 'ok\n');
  });

  for (const [what, host, destination] of [
    ['wss://', 'slow-ws.corp.test', () => wssOf(silent, '/ssh')],
    ['tcp+https://proxy/dest', 'slow-fixed.corp.test', () => `tcp+https://localhost:${silent.port}/git.corp.test:22`],
  ] as const) {
    it(`${what}: --connect-timeout 1 reaches burrow, so ssh gives up on a proxy that never answers after about a second`, { timeout: 60_000 }, async () => {
      const { file, block } = await sshConfigFile(`silent-${host}`, [
        destination(), '--host', host, '--user', sshd.user, '--connect-timeout', '1', '--header', `X-Api-Key: ${API_KEY}`,
        '--alternate-ca-path', silent.caPath, '--browser-cmd', followBrowser,
      ]);
      const started = Date.now();
      const r = await ssh(file, [host, 'true'], 30_000);
      const elapsed = Date.now() - started;
      assert.equal(r.code, 255, diag(r.stderr, block));
      assert.match(r.stderr, /timed out after 1s/, r.stderr);
      assert.ok(elapsed < 10_000, `ssh gave up after ${elapsed} ms (the default --connect-timeout is 30 s)`);
      assert.ok(!r.stderr.includes(API_KEY), r.stderr);
    });
  }

  it('--multiplex: one ssh connection, one burrow and one tunnel for a burst of git and ssh sessions; ssh -O exit ends it', { timeout: 180_000 }, async () => {
    const destination = `tcp+https://localhost:${proxy.port}/git.corp.test:22`;
    const { file, block } = await sshConfigFile('multiplex', [
      destination, '--host', 'mux-git.corp.test', '--user', sshd.user, '--multiplex', '--control-persist', '2m',
      '--alternate-ca-path', proxy.caPath, '--browser-cmd', followBrowser,
    ]);
    const sockets = join(env.XDG_CACHE_HOME!, 'burrow', 'ssh');
    assert.match(block, /^ {2}ControlMaster auto$/m);
    assert.ok(block.includes(`\n  ControlPath ${sockets}/%C\n`), block);
    assert.match(block, /^ {2}ControlPersist 2m$/m);
    assert.match(block, /^# One ssh connection per host/m);
    assert.equal(statSync(sockets).mode & 0o777, 0o700, 'the control socket directory is private');
    const args = sshArgs(file, { controlPath: true });
    // Not sshd.ts's run(): it kills the command's process group when the command exits, and the
    // master that ControlPersist leaves behind is in that group. This one waits for the exit only;
    // the master is stopped below with ssh -O exit, or killed by its pid.
    const muxSsh = (rest: string[], timeoutMs = 60_000) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        const child = spawn('ssh', [...args, ...rest], { env: { ...env, LANG: 'C' }, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        child.once('exit', (code) => {
          clearTimeout(timer);
          // What the pipes still hold arrives within a moment; the master never writes to them.
          setTimeout(() => resolve({ code: code ?? 255, stdout, stderr }), 50);
        });
      });
    let masterPid: number | undefined;
    const from = proxy.requests.length;
    const opened = proxy.stats.connectsByStatus[200] ?? 0;
    try {
      const first = await muxSsh(['mux-git.corp.test', 'echo one']);
      assert.equal(first.code, 0, diag(first.stderr, block));
      assert.equal(first.stdout, 'one\n');
      const check = await muxSsh(['-O', 'check', 'mux-git.corp.test']);
      assert.equal(check.code, 0, `a master runs after the first session ended: ${check.stderr}`);
      masterPid = Number(/Master running \(pid=(\d+)\)/.exec(check.stderr)?.[1]);
      assert.ok(masterPid > 0, check.stderr);
      // What the guide says: under a persisted master, ssh gives the ProxyCommand (burrow) /dev/null for stderr.
      // (The first ssh started it and then became a client of the master it forked: find it by its command line.)
      const burrows = readdirSync('/proc')
        .filter((pid) => /^\d+$/.test(pid))
        .filter((pid) => {
          try {
            return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(destination);
          } catch {
            return false;
          }
        });
      assert.equal(burrows.length, 1, `one burrow runs for the master: ${burrows.join(' ')}`);
      assert.equal(readlinkSync(`/proc/${burrows[0]}/fd/2`), '/dev/null');
      // A burst: sessions and git operations, all over the one connection.
      const results = await Promise.all([1, 2, 3].map((n) => muxSsh(['mux-git.corp.test', `echo ${n}`])));
      for (const [i, r] of results.entries()) assert.equal(r.stdout, `${i + 1}\n`, diag(r.stderr, block));
      const sshCommand = ['ssh', ...args].map(shQuote).join(' ');
      for (let i = 0; i < 2; i++) {
        const refs = await git(['ls-remote', `mux-git.corp.test:${repo.path}`, 'HEAD'], { env: { ...env, GIT_SSH_COMMAND: sshCommand }, timeoutMs: 60_000 });
        assert.ok(refs.startsWith(repo.head), refs);
      }
      // The first burrow may have signed in first (a CONNECT answered 302, then the retry).
      assert.equal((proxy.stats.connectsByStatus[200] ?? 0) - opened, 1, 'one tunnel for every session and git run');
      assert.ok(requestsFor('git.corp.test:22', from).length <= 2, 'and no other CONNECT than a sign-in\'s first one');
    } finally {
      const exit = await muxSsh(['-O', 'exit', 'mux-git.corp.test']);
      if (exit.code !== 0 && masterPid) process.kill(masterPid, 'SIGKILL');
    }
    const after = await muxSsh(['-O', 'check', 'mux-git.corp.test']);
    assert.notEqual(after.code, 0, 'no master after ssh -O exit');
    // The master's burrow ends with it (its stdin closes): nothing of the burst is left running.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && alive(masterPid!)) await new Promise((r) => setTimeout(r, 100));
    assert.ok(!alive(masterPid!), 'the master is gone');
  });

  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  it('--multiplex refusals: --control-persist alone, a bad time', async () => {
    const alone = await runBurrow(['ssh-config', 'git.corp.test', '--control-persist', '10m'], { env });
    assert.equal(alone.code, 2);
    assert.equal(alone.stderr, 'burrow: error: --control-persist only means something with --multiplex — add --multiplex, or leave out --control-persist\n');
    const bad = await runBurrow(['ssh-config', 'git.corp.test', '--multiplex', '--control-persist', '10 minutes'], { env });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^burrow: error: invalid --control-persist "10 minutes": it must be ssh's time format — for example/);
    assert.equal(bad.stdout.length, 0);
  });

  it('one browser sign-in in total: every burrow above reused the cached token', () => {
    assert.equal(browserLaunches(browserLog).length, 1, readFileSync(browserLog, 'utf8'));
    assert.equal(proxy.stats.signIns, 1);
  });
});
