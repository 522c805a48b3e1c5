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
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
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
    knownHosts = sshd.knownHostsFor(['ws-git.corp.test', 'fixed-git.corp.test', 'gw-git.corp.test', 'slow-ws.corp.test', 'slow-fixed.corp.test']);
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
  function sshArgs(file: string): string[] {
    return [
      '-F', file,
      '-i', sshd.clientKey,
      '-o', `UserKnownHostsFile=${knownHosts}`,
      '-o', 'GlobalKnownHostsFile=/dev/null',
      '-o', 'StrictHostKeyChecking=yes',
      '-o', 'IdentitiesOnly=yes',
      '-o', 'IdentityAgent=none',
      '-o', 'BatchMode=yes',
      '-o', 'ControlPath=none',
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

  it('one browser sign-in in total: every burrow above reused the cached token', () => {
    assert.equal(browserLaunches(browserLog).length, 1, readFileSync(browserLog, 'utf8'));
    assert.equal(proxy.stats.signIns, 1);
  });
});
