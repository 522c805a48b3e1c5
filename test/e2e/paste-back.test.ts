/**
 * Pasting the final sign-in address back on the terminal (the browser is on another device):
 * the real CLI on a real pseudo-terminal (util-linux `script`), the local proxy issuing tokens
 * of users in many groups (well over the 4095 bytes a canonical-mode terminal line holds), and
 * the proxy's routes API checking what was pasted before burrow takes it.
 */
import assert from 'node:assert/strict';
import { get as httpGet } from 'node:http';
import { request } from 'node:https';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { text } from '../../src/output/messages.js';
import { BURROW_BIN, storedTokens, tempDir } from '../helpers/burrow.js';
import { type FakePomerium, startFakePomerium } from '../helpers/fake-pomerium.js';
import { shQuote } from '../helpers/sshd.js';
import { runInTerminal, stopAllTerminals, type Terminal } from '../helpers/terminal.js';
import { eventually, startWorld, type World } from '../helpers/world.js';

/** Claims that make a token of a user in many groups: about 26 KiB once signed. */
const MANY_GROUPS = { groups: Array.from({ length: 400 }, (_, i) => `cn=team-${String(i).padStart(3, '0')},ou=groups,dc=corp,dc=example,dc=com`) };

function terminalEnv(cache: string): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, XDG_CACHE_HOME: cache, BURROW_CREDENTIAL_STORE: 'file', NO_COLOR: '1', TERM: 'dumb' };
}

const STTY_DONE = '@@stty-done';

/** `burrow <args>` on a terminal, then its exit code and the terminal's settings (`stty -a`). */
function burrowThenStty(args: string[], cache: string): Terminal {
  const burrow = [process.execPath, BURROW_BIN, ...args].map(shQuote).join(' ');
  // The marker after stty: its output comes in several reads, and all of it must be there.
  return runInTerminal(['sh', '-c', `${burrow}; echo "burrow-exit=$?"; stty -a; echo ${STTY_DONE}`], terminalEnv(cache));
}

/** The terminal's settings after burrow ended: canonical mode and echo are back. */
function assertTerminalRestored(screen: string): void {
  const stty = screen.slice(screen.indexOf('burrow-exit='));
  assert.match(stty, /(^|[\s;])icanon([\s;]|$)/, `canonical mode restored:\n${stty}`);
  assert.match(stty, /(^|[\s;])echo([\s;]|$)/, `echo restored:\n${stty}`);
}

/** The sign-in address burrow printed, once it also said where to paste. */
async function printedSignInUrl(term: Terminal): Promise<URL> {
  await eventually(
    () => /open this address in a browser: (\S+)/.test(term.screen()) && term.screen().includes('paste here the address it ends on'),
    15_000,
    () => `the sign-in address and the paste instructions; the terminal shows: ${term.screen()}`,
  );
  return new URL(/open this address in a browser: (\S+)/.exec(term.screen())![1]!);
}

/** Signs in on "the other device": submits the proxy's form and returns where the browser ends up. */
function signInElsewhere(signInUrl: URL, proxy: FakePomerium): Promise<string> {
  const url = new URL(signInUrl);
  url.searchParams.set('submit', '1');
  return new Promise((resolve, reject) => {
    request(url, { ca: readFileSync(proxy.caPath), agent: false, maxHeaderSize: 64 * 1024 }, (res) => {
      res.resume();
      resolve(String(res.headers.location));
    })
      .on('error', reject)
      .end();
  });
}

/** The token is nowhere on the screen: no stretch of it of 40 characters past the common JWT header. */
function assertTokenNotShown(screen: string, token: string): void {
  for (let i = 40; i + 40 <= token.length; i += 97) assert.ok(!screen.includes(token.slice(i, i + 40)), `token text at ${i} is on the screen`);
  assert.ok(!screen.includes(token.slice(-40)), 'the signature is on the screen');
}

async function waitFor(term: Terminal, line: string): Promise<void> {
  await eventually(() => term.screen().includes(line), 15_000, () => `${JSON.stringify(line)}; the terminal shows: ${term.screen()}`);
}

describe('pasting the final address back on the terminal', () => {
  let world: World;
  let other: FakePomerium;
  before(async () => {
    world = await startWorld({ tokenClaims: MANY_GROUPS });
    other = await startFakePomerium();
  });
  after(async () => {
    await stopAllTerminals();
    await world?.close();
    await other?.close();
  });

  it('takes a 26 KiB token, refusing garbage, a cut-off address, another attempt and another proxy first; never shows it', async () => {
    const cache = tempDir('burrow-paste-');
    // Listener mode: the terminal is not the tunnel here; the tunnel checks the token works.
    const term = runInTerminal([process.execPath, BURROW_BIN, ...world.tcpArgs(), '--no-browser'], terminalEnv(cache));
    await eventually(() => /127\.0\.0\.1:(\d+)\r?\n/.test(term.screen()), 15_000, () => `the listener address; the terminal shows: ${term.screen()}`);
    const port = Number(/127\.0\.0\.1:(\d+)\r?\n/.exec(term.screen())![1]);
    const reply = new Promise<string>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => socket.end('through a pasted sign-in'));
      let got = '';
      socket.setEncoding('utf8').on('data', (d: string) => (got += d));
      socket.on('end', () => resolve(got)).on('error', (error) => resolve(`(${error.message}) ${got}`));
    });
    const signInUrl = await printedSignInUrl(term);
    const finalAddress = await signInElsewhere(signInUrl, world.proxy);
    const token = new URL(finalAddress).searchParams.get('pomerium_jwt')!;
    assert.ok(token.length >= 16 * 1024, `a token of ${token.length} bytes`);
    const origin = `https://localhost:${world.proxy.port}`;

    term.write('not the right thing\r');
    await waitFor(term, text.pasteRefused(text.pasteNotUnderstood, 4));
    // What a canonical-mode terminal line keeps of it.
    term.write(`${finalAddress.slice(0, 4095)}\r`);
    await waitFor(term, text.pasteRefused(text.pasteCutOff, 3));
    const elsewhere = new URL(finalAddress);
    elsewhere.pathname = '/burrow/callback/another-attempt';
    term.write(`${elsewhere.href}\r`);
    await waitFor(term, text.pasteRefused(text.pasteOtherAttempt, 2));
    term.write(`${other.mintToken()}\r`);
    await waitFor(term, text.pasteRefused(text.tokenRefusedByProxy(origin, 401), 1));
    assert.deepEqual(storedTokens(cache), [], 'nothing refused was stored');

    // A slip corrected with backspace, then the whole address in one paste.
    term.write('x\x7f');
    term.write(`${finalAddress}\r`);
    assert.equal(await reply, 'through a pasted sign-in', `the terminal shows: ${term.screen()}`);
    assert.deepEqual(storedTokens(cache), [token], 'the whole token is stored');
    assert.ok(world.proxy.stats.routesRequests[200]! >= 1 && world.proxy.stats.routesRequests[401]! >= 1, JSON.stringify(world.proxy.stats.routesRequests));
    // The terminal is back in its own mode: what is typed now is echoed by it.
    term.write('typed-after-sign-in');
    await waitFor(term, 'typed-after-sign-in');
    assertTokenNotShown(term.screen(), token);
    await term.stop();
  });

  it('as an ssh ProxyCommand (stdin not the terminal): the bare token pasted on /dev/tty opens the tunnel', async () => {
    const cache = tempDir('burrow-paste-');
    const burrow = [process.execPath, BURROW_BIN, ...world.tcpArgs(), '--listen', '-', '--no-browser'].map(shQuote).join(' ');
    const term = runInTerminal(['sh', '-c', `${burrow} < /dev/null; echo "burrow-exit=$?"; stty -a; echo ${STTY_DONE}`], terminalEnv(cache));
    const finalAddress = await signInElsewhere(await printedSignInUrl(term), world.proxy);
    const token = new URL(finalAddress).searchParams.get('pomerium_jwt')!;
    term.write(`${token}\r`);
    await eventually(() => /burrow-exit=\d+/.test(term.screen()) && term.screen().includes(STTY_DONE), 15_000, () => `the exit; the terminal shows: ${term.screen()}`);
    assert.match(term.screen(), /burrow-exit=0/);
    assert.deepEqual(storedTokens(cache), [token]);
    assertTerminalRestored(term.screen());
    assertTokenNotShown(term.screen(), token);
  });

  it('Ctrl-C while pasting cancels the sign-in (exit 130), stores nothing and gives the terminal back', async () => {
    const cache = tempDir('burrow-paste-');
    const term = burrowThenStty(['login', world.proxy.url, '--alternate-ca-path', world.proxy.caPath, '--no-browser'], cache);
    const finalAddress = await signInElsewhere(await printedSignInUrl(term), world.proxy);
    term.write(finalAddress.slice(0, 9000));
    term.write('\x03');
    await eventually(() => /burrow-exit=\d+/.test(term.screen()) && term.screen().includes(STTY_DONE), 15_000, () => `the exit; the terminal shows: ${term.screen()}`);
    assert.match(term.screen(), /burrow-exit=130/);
    assertTerminalRestored(term.screen());
    assert.deepEqual(storedTokens(cache), []);
    assertTokenNotShown(term.screen(), new URL(finalAddress).searchParams.get('pomerium_jwt')!.slice(0, 8000));
    assert.equal(await term.exited, 0);
  });

  it('gives up after five refused pastes (exit 3, one line each), storing nothing', async () => {
    const cache = tempDir('burrow-paste-');
    const term = burrowThenStty(['login', world.proxy.url, '--alternate-ca-path', world.proxy.caPath, '--no-browser'], cache);
    await printedSignInUrl(term);
    for (let i = 0; i < 5; i++) term.write(`eyJnot.a.token-${i}\r`);
    await eventually(() => /burrow-exit=\d+/.test(term.screen()) && term.screen().includes(STTY_DONE), 15_000, () => `the exit; the terminal shows: ${term.screen()}`);
    assert.match(term.screen(), /burrow-exit=3\b/);
    assert.ok(term.screen().includes(text.pasteGaveUp(5)), term.screen());
    assert.equal(term.screen().split(text.pasteCutOff).length - 1, 4, 'four refusals, then the error');
    assertTerminalRestored(term.screen());
    assert.deepEqual(storedTokens(cache), []);
  });

  it('an older proxy without the routes API (404): the token is checked by its shape; Ctrl-D ends pasting, the browser may still come back', async () => {
    const old = await startWorld({ tokenClaims: MANY_GROUPS, routesApi: false });
    try {
      const cache = tempDir('burrow-paste-');
      const term = burrowThenStty(['login', old.proxy.url, '--alternate-ca-path', old.proxy.caPath, '--no-browser'], cache);
      const finalAddress = await signInElsewhere(await printedSignInUrl(term), old.proxy);
      const token = new URL(finalAddress).searchParams.get('pomerium_jwt')!;
      // The signature's end lost: the proxy cannot say so, the shape does.
      term.write(`${finalAddress.slice(0, -10)}\r`);
      await waitFor(term, text.pasteRefused(text.pasteCutOff, 4));
      term.write(`${token}\r`);
      await eventually(() => /burrow-exit=\d+/.test(term.screen()) && term.screen().includes(STTY_DONE), 15_000, () => `the exit; the terminal shows: ${term.screen()}`);
      assert.match(term.screen(), /burrow-exit=0/);
      assert.ok(term.screen().includes(text.signedIn(`https://localhost:${old.proxy.port}`, 'alice@corp.test', 'expires in 60 min')), term.screen());
      assert.deepEqual(storedTokens(cache), [token]);
      assert.ok(old.proxy.stats.routesRequests[404]! >= 1);
      assertTerminalRestored(term.screen());
      assertTokenNotShown(term.screen(), token);

      // Ctrl-D on an empty line: no more pasting, and the callback on this machine still works.
      const cache2 = tempDir('burrow-paste-');
      const again = burrowThenStty(['login', old.proxy.url, '--alternate-ca-path', old.proxy.caPath, '--no-browser'], cache2);
      const signInUrl = await printedSignInUrl(again);
      again.write('\x04');
      await waitFor(again, text.pasteClosed);
      const back = await signInElsewhere(signInUrl, old.proxy);
      await new Promise<void>((resolve, reject) => {
        httpGet(back, { maxHeaderSize: 64 * 1024 }, (res) => {
          res.resume();
          res.once('end', resolve);
        }).on('error', reject);
      });
      await eventually(() => /burrow-exit=\d+/.test(again.screen()) && again.screen().includes(STTY_DONE), 15_000, () => `the exit; the terminal shows: ${again.screen()}`);
      assert.match(again.screen(), /burrow-exit=0/);
      assertTerminalRestored(again.screen());
      assert.equal(storedTokens(cache2).length, 1);
    } finally {
      await old.close();
    }
  });
});
