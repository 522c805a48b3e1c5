/**
 * Listener mode dials the proxy per connection: when the proxy restarts (stops, then listens
 * again on the same port), the tunnels it carried close, connections attempted while it is down
 * get one clear line on stderr and are closed, the listener stays up, and new connections work
 * again afterwards without restarting burrow. CONNECT and WebSocket alike.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { startListener } from '../helpers/burrow.js';
import { chunked, payload, sha256 } from '../helpers/data.js';
import { DEST, eventually, suiteWorld } from '../helpers/world.js';

/** Sends `data`, half-closes, resolves with what came back by the time the connection closed. */
function roundTrip(port: number, data: Buffer, timeoutMs = 15_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', () => {});
    socket.once('end', () => socket.end());
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    socket.once('connect', () => chunked(data).pipe(socket));
  });
}

describe('burrow tcp listener: the proxy restarts', () => {
  const world = suiteWorld();

  for (const transport of ['connect', 'websocket'] as const) {
    it(`${transport}: open tunnels close, attempts while down fail with a clear line, new connections work after the restart`, async () => {
      let args = world.tcpArgs().slice(1);
      if (transport === 'websocket') {
        world.proxy.addRoute({ from: 'wss://localhost/reconnect', to: `tcp://${world.echo.address}` });
        args = [`${world.proxy.url.replace('https:', 'wss:')}/reconnect`, '--alternate-ca-path', world.proxy.caPath];
      }
      const burrow = await startListener(args, { env: world.env });
      const before = payload(200 * 1024, 31);
      assert.equal(sha256(await roundTrip(burrow.port, before)), sha256(before));

      // A tunnel that is open (idle) when the proxy goes down.
      const idle = net.connect({ host: '127.0.0.1', port: burrow.port, allowHalfOpen: true });
      idle.on('error', () => {});
      let idleEcho = '';
      let idleEnded = false;
      idle.on('data', (d: Buffer) => (idleEcho += d.toString()));
      idle.once('end', () => (idleEnded = true));
      idle.once('close', () => (idleEnded = true));
      idle.write('ping');
      await eventually(() => idleEcho === 'ping', 5000, 'the idle tunnel to be up');

      const port = world.proxy.port;
      await world.proxy.stop();
      await eventually(() => idleEnded, 5000, 'the open tunnel to be closed when the proxy went down');
      idle.destroy();

      // While it is down: each attempt is accepted locally, then closed with nothing sent back.
      const stderrBefore = burrow.stderr().length;
      for (let i = 0; i < 3; i++) assert.equal((await roundTrip(burrow.port, Buffer.from('lost'))).length, 0);
      await eventually(() => (burrow.stderr().slice(stderrBefore).match(/connection refused/g) ?? []).length >= 3, 5000, 'three refusal lines');
      const failure = burrow.stderr().slice(stderrBefore).split('\n').find((l) => l.includes('connection refused'))!;
      assert.match(failure, new RegExp(`^burrow: #\\d+ 127\\.0\\.0\\.1:\\d+: error: cannot connect to https://localhost:${port} \\(for .+\\): connection refused — .+`));
      assert.equal(burrow.child.exitCode, null, 'the listener is still running');

      await world.proxy.start();
      assert.equal(world.proxy.port, port, 'the proxy is back on the same port');
      const results = await Promise.all(
        Array.from({ length: 10 }, async (_, i) => {
          const data = payload(100 * 1024 + i, 40 + i);
          return sha256(await roundTrip(burrow.port, data)) === sha256(data);
        }),
      );
      assert.deepEqual(results, Array(10).fill(true), 'every connection after the restart carries its bytes');
      assert.doesNotMatch(burrow.stderr(), /at .+\.js:\d+/, 'no stack trace');
      assert.ok(!burrow.stderr().includes(world.token), 'no token in the output');
      assert.equal(await burrow.stop(), 0);
    });
  }

  it('a proxy that restarts again and again: every window of uptime serves', async () => {
    const burrow = await startListener(world.tcpArgs(DEST).slice(1), { env: world.env });
    for (let round = 0; round < 3; round++) {
      await world.proxy.stop();
      assert.equal((await roundTrip(burrow.port, Buffer.from('x'))).length, 0);
      await world.proxy.start();
      const data = payload(50 * 1024, 60 + round);
      assert.equal(sha256(await roundTrip(burrow.port, data)), sha256(data), `round ${round}`);
    }
    assert.equal(await burrow.stop(), 0);
  });
});
