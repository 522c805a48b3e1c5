/**
 * `npm run demo`: burrow's main job on this machine, against the bundled local proxy.
 * Starts the Pomerium-compatible proxy (TLS, routes, tokens) and an echo service behind it,
 * then runs the real CLI in both modes and shows the bytes making the round trip.
 */
import net from 'node:net';
import { followBrowser } from './helpers/browsers/index.js';
import { runBurrow, startListener, stopAll, tempDir } from './helpers/burrow.js';
import { payload, sha256 } from './helpers/data.js';
import { DEST, startWorld } from './helpers/world.js';

const say = (line = '') => process.stdout.write(`${line}\n`);

async function main(): Promise<void> {
  const world = await startWorld({ extraRoutes: [{ from: 'tcp+https://bob-only.corp.test:22', to: 'tcp://127.0.0.1:1', allow: ['bob@corp.test'] }] });
  try {
    say(`local identity-aware proxy : ${world.proxy.url}  (TLS from test/fixtures, CA ${world.proxy.caPath})`);
    say(`route                      : tcp+https://${DEST} -> tcp://${world.echo.address} (an echo service)`);
    say(`token                      : a service account JWT signed by the proxy (BURROW_SERVICE_ACCOUNT)`);
    say();

    const args = world.tcpArgs();
    say(`$ burrow ${args.join(' ')}`);
    const listener = await startListener(args.slice(1), { env: world.env });
    say(`  listening on ${listener.address}`);
    const data = payload(8 * 1024 * 1024, 42);
    const started = Date.now();
    const back = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const socket = net.connect({ host: '127.0.0.1', port: listener.port, allowHalfOpen: true }, () => socket.end(data));
      socket.on('data', (d: Buffer) => chunks.push(d));
      socket.on('end', () => resolve(Buffer.concat(chunks)));
      socket.on('error', reject);
    });
    const ms = Date.now() - started;
    say(`  sent 8 MiB to ${listener.address}, got ${(back.length / 2 ** 20).toFixed(0)} MiB back in ${ms} ms`);
    say(`  sha256 sent     ${sha256(data)}`);
    say(`  sha256 received ${sha256(back)}  ${sha256(back) === sha256(data) ? 'OK' : 'MISMATCH'}`);
    await listener.stop();
    say();

    const stdioArgs = world.tcpArgs(DEST, '--listen', '-');
    say(`$ echo "hello through the tunnel" | burrow ${stdioArgs.join(' ')}`);
    const stdio = await runBurrow(stdioArgs, { env: world.env, input: 'hello through the tunnel\n' });
    process.stdout.write(`  ${stdio.stdout.toString()}`);
    say(`  (exit ${stdio.code}; this is what ssh's ProxyCommand sees)`);
    say();

    // Browser sign-in, as a first `git pull` does it. The "browser" is the scripted stand-in the
    // tests use (it submits the proxy's sign-in page); a person gets their real browser.
    const cache = tempDir('burrow-demo-');
    const userEnv = { XDG_CACHE_HOME: cache };
    const signInArgs = world.tcpArgs(DEST, '--listen', '-', '--browser-cmd', followBrowser);
    say(`$ echo "first" | burrow tcp ${DEST} --listen - --browser-cmd <stand-in browser> ...   # no token yet`);
    const first = await runBurrow(signInArgs, { env: userEnv, input: 'first\n' });
    for (const line of first.stderr.trim().split('\n')) say(`  ${line}`);
    process.stdout.write(`  ${first.stdout.toString()}`);
    say(`  (exit ${first.code}; the proxy has seen ${world.proxy.stats.signIns} sign-in)`);
    const second = await runBurrow(signInArgs, { env: userEnv, input: 'second\n' });
    say(`$ echo "second" | burrow tcp ...   # the cached token is reused: no browser, no message`);
    process.stdout.write(`  ${second.stdout.toString()}`);
    say(`  (exit ${second.code}; still ${world.proxy.stats.signIns} sign-in)`);
    say();

    say(`$ burrow tcp bob-only.corp.test:22 ...   # signed in, but the route's policy allows only bob`);
    const denied = await runBurrow(world.tcpArgs('bob-only.corp.test:22', '--listen', '-'), { env: userEnv, input: 'x' });
    say(`  ${denied.stderr.trim()}`);
    say(`  (exit ${denied.code})`);
    say();
    say('Next: git through it — see README "Usage".');
    if (sha256(back) !== sha256(data) || stdio.code !== 0 || first.code !== 0 || second.code !== 0) process.exitCode = 1;
  } finally {
    await stopAll();
    await world.close();
  }
}

await main();
