/**
 * `npm run demo`: burrow's main job on this machine, against the bundled local proxy.
 * Starts the Pomerium-compatible proxy (TLS, routes, tokens) and an echo service behind it,
 * then runs the real CLI in both modes and shows the bytes making the round trip.
 */
import net from 'node:net';
import { runBurrow, startListener, stopAll } from './helpers/burrow.js';
import { payload, sha256 } from './helpers/data.js';
import { DEST, startWorld } from './helpers/world.js';

const say = (line = '') => process.stdout.write(`${line}\n`);

async function main(): Promise<void> {
  const world = await startWorld();
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

    say('$ burrow tcp ... without a token (the proxy answers 302: sign-in required)');
    const denied = await runBurrow(stdioArgs, { input: 'x' });
    say(`  ${denied.stderr.trim()}`);
    say(`  (exit ${denied.code})`);
    say();
    say('Next: git through it — see README "Usage".');
    if (sha256(back) !== sha256(data) || stdio.code !== 0) process.exitCode = 1;
  } finally {
    await stopAll();
    await world.close();
  }
}

await main();
