/**
 * The fake proxy as a process of its own (proxy-process.ts starts it), so that a test can kill
 * it with SIGKILL (the kernel closes its sockets) or freeze it with SIGSTOP (its sockets stay
 * open but nobody reads or writes: a blackhole). `node proxy-child.js '<options JSON>'` prints
 * one JSON line `{ url, caPath, token }` on stdout once it listens, then serves until killed.
 */
import { type FakePomeriumOptions, startFakePomerium } from './fake-pomerium.js';

// `node --test dist/test/` runs every .js file under it, this one too: do nothing then.
if (process.argv.length === 2 && process.env.NODE_TEST_CONTEXT) process.exit(0);

const options = JSON.parse(process.argv[2] ?? '{}') as Pick<FakePomeriumOptions, 'routes' | 'wsAutoPong'>;
const proxy = await startFakePomerium(options);
process.stdout.write(`${JSON.stringify({ url: proxy.url, caPath: proxy.caPath, token: proxy.mintToken() })}\n`);
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => void proxy.close().then(() => process.exit(0)));
}
// A parent that dies without stopping us must not leave us running.
process.stdin.resume();
process.stdin.once('end', () => process.exit(0));
