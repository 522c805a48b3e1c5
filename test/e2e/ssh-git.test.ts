/**
 * ssh and git through burrow, for real: the OpenSSH client and server and the git CLI, the local
 * proxy routing `tcp+https://git.corp.test:22` to a test sshd, and burrow as ssh's ProxyCommand,
 * as a local listener, and as `burrow ssh-config` writes it. One user (alice) signs in once, through
 * the scripted stand-in browser, and every later burrow process reuses the cached token.
 *
 * When sshd, ssh or git is missing these tests fail with the package to install (never skip).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { browserEnv, browserLaunches, followBrowser } from '../helpers/browsers/index.js';
import { BURROW_BIN, runBurrow, startListener, stopAll, tempDir, type BurrowProcess } from '../helpers/burrow.js';
import { payload, sha256 } from '../helpers/data.js';
import { type FakePomerium, startFakePomerium } from '../helpers/fake-pomerium.js';
import { type BareRepo, createBareRepo, git } from '../helpers/git-repo.js';
import { missingSshTools, run, type RunResult, shQuote, type Sshd, start, startSshd, stopAllCommands } from '../helpers/sshd.js';
import { eventually } from '../helpers/world.js';
import { freePort } from '../helpers/processes.js';

const MiB = 1024 * 1024;
const TRANSFER_BYTES = 50 * MiB;

async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

describe('ssh and git through burrow (real OpenSSH and git)', () => {
  let sshd: Sshd;
  let proxy: FakePomerium;
  let repo: BareRepo;
  let work: string;
  /** Shared by every burrow: one cache, so one browser sign-in for the whole file. */
  let env: NodeJS.ProcessEnv;
  let browserLog: string;
  let knownHosts: string;
  /** `Host git.corp.test` with burrow as ProxyCommand, plus the safe client defaults. */
  let proxyConfig: string;
  /** Only the safe client defaults (for `-o ProxyCommand=…` and for the listener). */
  let plainConfig: string;
  /** A 50 MiB file on the server, for downloads. */
  let serverFile: { path: string; sha256: string };
  let listener: (BurrowProcess & { port: number }) | undefined;

  /** `stderr` plus the end of the server's log, for failure messages. */
  function diag(stderr: string): string {
    return `${stderr}\n--- sshd log (last lines) ---\n${sshd.log().split('\n').slice(-30).join('\n')}`;
  }

  /** burrow in stdio mode as ssh runs it: `sh -c 'exec <this>'`, `%h:%p` expanded by ssh. */
  function burrowCommand(args: string[]): string {
    return [process.execPath, BURROW_BIN, 'tcp', '--listen', '-', '%h:%p', ...args].map(shQuote).join(' ');
  }
  const proxyArgs = () => ['--pomerium-url', proxy.url, '--alternate-ca-path', proxy.caPath, '--browser-cmd', followBrowser];

  function ssh(args: string[], options: { input?: Buffer; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
    return run('ssh', args, { env: options.env ?? env, input: options.input, timeoutMs: options.timeoutMs ?? 60_000 });
  }

  /** The burrow listener (`tcp git.corp.test:22 --listen 127.0.0.1:0`), started on first use. */
  async function burrowListener(): Promise<BurrowProcess & { port: number }> {
    listener ??= await startListener(['git.corp.test:22', '--listen', '127.0.0.1:0', ...proxyArgs()], { env });
    return listener;
  }

  /** An ssh config for `ssh -p PORT 127.0.0.1`, i.e. through the listener. */
  function listenerConfig(port: number): string {
    return sshd.sshConfigFile('', sshd.knownHostsFor([`[127.0.0.1]:${port}`]));
  }

  before(async () => {
    const missing = missingSshTools();
    if (missing) throw new Error(missing);
    work = tempDir('burrow-ssh-git-');
    sshd = await startSshd();
    proxy = await startFakePomerium({
      routes: [
        { from: 'tcp+https://git.corp.test:22', to: `tcp://${sshd.address}` },
        { from: 'tcp+https://bob-only.corp.test:22', to: `tcp://${sshd.address}`, allow: ['bob@corp.test'] },
        { from: 'tcp+https://down.corp.test:22', to: `tcp://127.0.0.1:${await freePort()}` },
      ],
    });
    browserLog = join(work, 'browser.log');
    env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      XDG_CACHE_HOME: join(work, 'cache'),
      BURROW_CREDENTIAL_STORE: 'file',
      NO_COLOR: '1',
      ...browserEnv({ log: browserLog }),
    };
    knownHosts = sshd.knownHostsFor(['git.corp.test', 'bob-only.corp.test', 'down.corp.test', 'nowhere.corp.test']);
    proxyConfig = sshd.sshConfigFile(`Host git.corp.test\n  ProxyCommand ${burrowCommand(proxyArgs())}`, knownHosts);
    plainConfig = sshd.sshConfigFile('', knownHosts);

    mkdirSync(join(work, 'srv'));
    repo = await createBareRepo(join(work, 'srv'));
    const data = payload(TRANSFER_BYTES, 7);
    serverFile = { path: join(work, 'srv', 'download.bin'), sha256: sha256(data) };
    writeFileSync(serverFile.path, data);
  });

  after(async () => {
    await stopAllCommands();
    await listener?.stop();
    await stopAll();
    await proxy?.close();
    await sshd?.stop();
  });

  /** Clones `url` into a fresh directory and checks it against the server's repository. */
  async function cloneAndVerify(url: string, gitSshCommand: string): Promise<string> {
    const dest = join(work, `clone-${Date.now()}`);
    try {
      await git(['clone', '-q', url, dest], { env: { ...env, GIT_SSH_COMMAND: gitSshCommand }, timeoutMs: 180_000 });
    } catch (error) {
      throw new Error(diag((error as Error).message), { cause: error });
    }
    const serverHead = (await git(['rev-parse', 'HEAD'], { cwd: repo.path })).trim();
    assert.equal((await git(['rev-parse', 'HEAD'], { cwd: dest })).trim(), serverHead, 'HEAD of the clone is the server HEAD');
    assert.equal(await fileSha256(join(dest, repo.bigFile)), repo.bigFileSha256, `${repo.bigFile} arrived intact`);
    assert.equal((await git(['rev-list', '--count', 'HEAD'], { cwd: dest })).trim(), (await git(['rev-list', '--count', 'HEAD'], { cwd: repo.path })).trim());
    return dest;
  }

  it('git clone through ProxyCommand (GIT_SSH_COMMAND="ssh -F …"): history and a 100 MiB file arrive intact', { timeout: 240_000 }, async () => {
    const dest = await cloneAndVerify(`git.corp.test:${repo.path}`, `ssh -F ${shQuote(proxyConfig)}`);
    assert.equal(repo.head, (await git(['rev-parse', 'HEAD'], { cwd: dest })).trim());
    assert.equal(browserLaunches(browserLog).length, 1, 'the first burrow signed in through the browser');
    rmSync(dest, { recursive: true, force: true });
  });

  it('git clone and git push through a burrow listener; the push lands on the server', { timeout: 240_000 }, async () => {
    const { port } = await burrowListener();
    const gitSsh = `ssh -F ${shQuote(listenerConfig(port))}`;
    const dest = await cloneAndVerify(`ssh://${sshd.user}@127.0.0.1:${port}${repo.path}`, gitSsh);
    writeFileSync(join(dest, 'pushed.txt'), 'pushed through burrow\n');
    await git(['add', 'pushed.txt'], { cwd: dest });
    await git(['commit', '-q', '-m', 'Push through burrow'], { cwd: dest });
    const pushed = (await git(['rev-parse', 'HEAD'], { cwd: dest })).trim();
    await git(['push', '-q', 'origin', 'main'], { cwd: dest, env: { ...env, GIT_SSH_COMMAND: gitSsh }, timeoutMs: 60_000 });
    assert.equal((await git(['--git-dir', repo.path, 'log', '-1', '--format=%H %s', 'main'])).trim(), `${pushed} Push through burrow`);
    assert.equal(await git(['--git-dir', repo.path, 'show', 'main:pushed.txt']), 'pushed through burrow\n');
    rmSync(dest, { recursive: true, force: true });
  });

  it("ssh 'cat > file' of 50 MiB through ProxyCommand: the server has the same bytes", { timeout: 120_000 }, async () => {
    const data = payload(TRANSFER_BYTES, 11);
    const target = join(work, 'srv', 'upload.bin');
    const r = await ssh(['-F', proxyConfig, 'git.corp.test', `cat > ${shQuote(target)}`], { input: data });
    assert.equal(r.code, 0, diag(r.stderr));
    assert.equal(await fileSha256(target), sha256(data));
    rmSync(target, { force: true });
  });

  it("ssh 'cat file' of 50 MiB through ProxyCommand: the client gets the same bytes", { timeout: 120_000 }, async () => {
    const r = await ssh(['-F', proxyConfig, 'git.corp.test', `cat ${shQuote(serverFile.path)}`]);
    assert.equal(r.code, 0, diag(r.stderr));
    assert.equal(r.stdout.length, TRANSFER_BYTES);
    assert.equal(sha256(r.stdout), serverFile.sha256);
  });

  it('an interactive ssh command answers while a bulk transfer runs on another connection of the same listener', { timeout: 120_000 }, async () => {
    const { port } = await burrowListener();
    const config = listenerConfig(port);
    const bulk = start('ssh', ['-F', config, '-p', String(port), '127.0.0.1', `cat ${shQuote(serverFile.path)}`], { env, timeoutMs: 90_000 });
    bulk.child.stdin.end();
    // Read the bulk stream slowly (one chunk every 10 ms) while the interactive command runs, so
    // the transfer is still going when it answers however fast this machine is; then at full speed.
    const hash = createHash('sha256');
    let received = 0;
    let throttled = true;
    bulk.child.stdout.on('data', (chunk: Buffer) => {
      received += chunk.length;
      hash.update(chunk);
      if (throttled) {
        bulk.child.stdout.pause();
        setTimeout(() => bulk.child.stdout.resume(), 10);
      }
    });
    const order: string[] = [];
    const bulkExit = bulk.exited.then((code) => {
      order.push('bulk finished');
      return code;
    });
    await eventually(() => received >= MiB || bulk.child.exitCode !== null, 60_000, 'the bulk transfer to start');

    const receivedBefore = received;
    const ping = await ssh(['-F', config, '-p', String(port), '127.0.0.1', 'echo', 'ping'], { timeoutMs: 60_000 });
    order.push('ping answered');
    const receivedDuring = received - receivedBefore;
    throttled = false;
    bulk.child.stdout.resume();

    const bulkCode = await bulkExit;
    assert.equal(ping.code, 0, diag(ping.stderr));
    assert.equal(ping.stdout.toString(), 'ping\n');
    assert.deepEqual(order, ['ping answered', 'bulk finished'], 'the interactive command finished before the bulk transfer');
    assert.ok(receivedDuring > 0, 'the bulk transfer kept moving while the interactive command ran');
    assert.equal(bulkCode, 0, diag(bulk.stderr()));
    assert.equal(received, TRANSFER_BYTES);
    assert.equal(hash.digest('hex'), serverFile.sha256);
  });

  describe('each failure reaches the ssh user as burrow\'s one actionable line (ssh exits 255)', () => {
    /** `ssh root@<host> true` with burrow (given `args`) as ProxyCommand; returns ssh's stderr. */
    async function sshThroughFailingBurrow(host: string, args: string[], sshEnv = env): Promise<string> {
      const r = await ssh(['-F', plainConfig, '-o', `ProxyCommand=${burrowCommand(args)}`, host, 'true'], { env: sshEnv, timeoutMs: 30_000 });
      assert.equal(r.code, 255, `ssh should fail; stderr: ${r.stderr}`);
      return r.stderr;
    }
    /** The single stderr line that contains `marker`. */
    function lineWith(stderr: string, marker: string): string {
      const lines = stderr.split('\n').filter((l) => l.includes(marker));
      assert.equal(lines.length, 1, `one line with ${JSON.stringify(marker)} in:\n${stderr}`);
      return lines[0]!;
    }

    it('denied by policy: HTTP 403, naming the signed-in user', async () => {
      const stderr = await sshThroughFailingBurrow('bob-only.corp.test', proxyArgs());
      const line = lineWith(stderr, 'access denied by');
      assert.match(line, /HTTP 403/);
      assert.match(line, /bob-only\.corp\.test:22/);
      assert.match(line, /signed in as alice@corp\.test/, `the denial names who the proxy saw: ${line}`);
    });

    it('no such route: HTTP 404', async () => {
      const line = lineWith(await sshThroughFailingBurrow('nowhere.corp.test', proxyArgs()), 'has no route for');
      assert.match(line, /nowhere\.corp\.test:22 \(HTTP 404\)/);
    });

    it('upstream down: HTTP 503', async () => {
      const line = lineWith(await sshThroughFailingBurrow('down.corp.test', proxyArgs()), 'could not reach');
      assert.match(line, /down\.corp\.test:22 \(HTTP 503\)/);
    });

    it('proxy unreachable: connection refused', async () => {
      const url = `https://127.0.0.1:${await freePort()}`;
      const line = lineWith(
        await sshThroughFailingBurrow('git.corp.test', ['--pomerium-url', url, '--alternate-ca-path', proxy.caPath, '--browser-cmd', followBrowser]),
        'connection refused',
      );
      assert.ok(line.includes(url), line);
    });

    it('TLS: the proxy certificate is not trusted without --alternate-ca-path', async () => {
      const line = lineWith(await sshThroughFailingBurrow('git.corp.test', ['--pomerium-url', proxy.url, '--browser-cmd', followBrowser]), 'is not trusted');
      assert.match(line, /--alternate-ca-path/);
    });

    it('sign-in needed, no browser and no terminal (an IDE\'s background fetch): one line naming burrow login, at once', { timeout: 60_000 }, async () => {
      const launches = browserLaunches(browserLog).length;
      const freshUser = { ...env, XDG_CACHE_HOME: join(work, 'cache-nobody-signed-in') };
      // setsid: a ProxyCommand with no controlling terminal, whatever terminal the test runs in.
      const command = `setsid -w ${burrowCommand(['--pomerium-url', proxy.url, '--alternate-ca-path', proxy.caPath, '--no-browser'])}`;
      const started = Date.now();
      const r = await ssh(['-F', plainConfig, '-o', `ProxyCommand=${command}`, 'git.corp.test', 'true'], { env: freshUser, timeoutMs: 30_000 });
      assert.equal(r.code, 255, `ssh should fail; stderr: ${r.stderr}`);
      const line = lineWith(r.stderr, 'burrow: error: cannot sign in to');
      assert.ok(line.includes(`"burrow login ${proxy.url}"`), line);
      assert.ok(Date.now() - started < 15_000, 'not after --login-timeout');
      assert.equal(browserLaunches(browserLog).length, launches, 'no browser was launched');
    });
  });

  it('burrow ssh-config output works as-is with ssh -F', async () => {
    const out = await runBurrow(
      ['ssh-config', 'git.corp.test', '--user', sshd.user, '--pomerium-url', proxy.url, '--alternate-ca-path', proxy.caPath, '--browser-cmd', followBrowser],
      { env },
    );
    assert.equal(out.code, 0, out.stderr);
    const block = out.stdout.toString('utf8');
    assert.match(block, /^Host git\.corp\.test$/m);
    assert.match(block, /^\s+ProxyCommand .*tcp --listen - %h:%p/m);
    const file = join(work, 'ssh-config-from-burrow');
    writeFileSync(file, block);
    // Only the safety options on the command line: the user and the ProxyCommand come from the file.
    const r = await ssh([
      '-F', file,
      '-i', sshd.clientKey,
      '-o', `UserKnownHostsFile=${knownHosts}`,
      '-o', 'GlobalKnownHostsFile=/dev/null',
      '-o', 'StrictHostKeyChecking=yes',
      '-o', 'IdentitiesOnly=yes',
      '-o', 'IdentityAgent=none',
      '-o', 'BatchMode=yes',
      'git.corp.test', 'echo', 'ok',
    ]);
    assert.equal(r.code, 0, `${diag(r.stderr)}\n--- config ---\n${block}`);
    assert.equal(r.stdout.toString(), 'ok\n');
  });

  it('one browser sign-in in total: every burrow above reused the cached token', () => {
    assert.equal(browserLaunches(browserLog).length, 1, readFileSync(browserLog, 'utf8'));
    assert.equal(proxy.stats.signIns, 1);
  });
});
