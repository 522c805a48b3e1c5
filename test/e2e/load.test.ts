/**
 * Load: 1000 concurrent connections through one burrow listener, each echoing 64–256 KiB
 * checked by sha256, twice; afterwards burrow's file descriptors return exactly to where they were,
 * once garbage is collected its JS heap and buffers do too, and the second burst adds (next to)
 * nothing to its RSS.
 * Then the same number echoing 256 KiB each at once with the proxy in its own process, where
 * burrow's peak RSS is bounded (docs/performance.md "Memory: 1,000 busy tunnels at once").
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { startListener } from '../helpers/burrow.js';
import { startEchoServer } from '../helpers/echo-server.js';
import { startProxyProcess, stopProxyProcesses } from '../helpers/proxy-process.js';
import { attachInspector, echoBurst, fdCount, fdLimits, INSPECT_ENV, MiB, peakRssBytes, rssBytes, settle } from '../helpers/load.js';
import { DEST, eventually, suiteWorld } from '../helpers/world.js';
import { hashedRoundTrip } from '../helpers/load.js';

const CONNECTIONS = 1000;
/** 64 KiB to 256 KiB, spread over the connections. */
const sizeOf = (i: number) => (64 + ((i * 37) % 193)) * 1024;

describe('burrow tcp: load', () => {
  const world = suiteWorld();

  it(`${CONNECTIONS} concurrent connections, each verified by sha256; fds and memory return to baseline`, async () => {
    // This process holds every connection 4 times (client, proxy TLS, proxy→echo, echo), burrow
    // twice. Node raises the soft limit to the hard one at start-up, so the hard limit is what counts.
    const needed = 4 * CONNECTIONS + 200;
    const limits = fdLimits();
    assert.ok(
      limits.soft >= needed,
      `this test needs ${needed} file descriptors, the limit is ${limits.soft} (hard ${limits.hard}): raise it (ulimit -Hn ${needed}; ulimit -n ${needed})`,
    );

    // The inspector lets the test force a full GC: an idle listener keeps a burst's garbage (and
    // the native buffers it owns) until V8 next allocates, which says nothing about leaks.
    const burrow = await startListener(world.tcpArgs().slice(1), { env: { ...world.env, ...INSPECT_ENV } });
    const pid = burrow.child.pid!;
    assert.ok(fdLimits(pid).soft >= 2 * CONNECTIONS + 100, `burrow's own fd limit: ${JSON.stringify(fdLimits(pid))}`);
    const inspector = await attachInspector(burrow.stderr());
    try {
      // Warm-up: code paths loaded, TLS context built, JIT warm. Then the baseline.
      const warm = await echoBurst(burrow.port, 50, sizeOf, 1, 30_000);
      assert.equal(warm.ok, 50, warm.failures.join('; '));
      await eventually(() => world.proxy.openTunnels === 0, 5000, 'warm-up tunnels to close');
      await new Promise((r) => setTimeout(r, 500));
      await inspector.collectGarbage();
      const baseFds = fdCount(pid);
      const baseRss = rssBytes(pid);
      const base = await inspector.memoryUsage();

      const burst = await echoBurst(burrow.port, CONNECTIONS, sizeOf, 1000, 90_000);
      assert.equal(burst.ok, CONNECTIONS, `failed: ${burst.failures.join('; ')}`);
      assert.equal(burrow.child.exitCode, null, 'the listener is still running');
      assert.doesNotMatch(burrow.stderr(), /Warning|error/, 'no Node warnings (e.g. MaxListenersExceeded) and no failures');
      await eventually(() => world.proxy.openTunnels === 0, 10_000, 'every tunnel to close at the proxy');

      // Every socket is closed: the descriptor count is back exactly where it was.
      const fds = await settle(() => fdCount(pid), (n) => n <= baseFds, 10_000);
      assert.equal(fds, baseFds, `file descriptors: ${baseFds} before, ${fds} after ${CONNECTIONS} connections`);

      await new Promise((r) => setTimeout(r, 1000));
      const idleRss = rssBytes(pid);
      await inspector.collectGarbage();
      const after = await inspector.memoryUsage();
      const rss = rssBytes(pid);

      // A second burst of the same size: what a leak keeps adds up burst after burst, what glibc
      // keeps in its free lists after the first peak is reused by the second.
      const again = await echoBurst(burrow.port, CONNECTIONS, sizeOf, 5000, 90_000);
      assert.equal(again.ok, CONNECTIONS, `second burst failed: ${again.failures.join('; ')}`);
      assert.doesNotMatch(burrow.stderr(), /Warning|error/, 'no Node warnings and no failures in the second burst');
      assert.doesNotMatch(burrow.stderr(), /Warning|error/, "no Node warnings and no failures in the second burst");
      await eventually(() => world.proxy.openTunnels === 0, 10_000, 'every tunnel of the second burst to close at the proxy');
      const fdsAgain = await settle(() => fdCount(pid), (n) => n <= baseFds, 10_000);
      await new Promise((r) => setTimeout(r, 1000));
      await inspector.collectGarbage();
      const afterAgain = await inspector.memoryUsage();
      const rssAgain = rssBytes(pid);

      const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;
      process.stderr.write(
        `# load: 2 × ${CONNECTIONS} × ${(burst.bytesEachWay / CONNECTIONS / 1024).toFixed(0)} KiB avg each way; fds ${baseFds} → ${fds} → ${fdsAgain}; ` +
          `RSS ${mib(baseRss)} → ${mib(idleRss)} idle → ${mib(rss)} after GC → ${mib(rssAgain)} after the second burst; ` +
          `heap ${mib(base.heapUsed)} → ${mib(after.heapUsed)} → ${mib(afterAgain.heapUsed)}; ` +
          `array buffers ${mib(base.arrayBuffers)} → ${mib(after.arrayBuffers)} → ${mib(afterAgain.arrayBuffers)}\n`,
      );
      assert.equal(fdsAgain, baseFds, `file descriptors: ${baseFds} before, ${fdsAgain} after the second burst`);
      // Nothing the tunnels used is still referenced: a leaked socket, closure or buffer per
      // connection would keep >= 10 KiB of heap or >= 64 KiB of buffers each, i.e. >= 10 MiB here.
      for (const [label, m] of [['first', after], ['second', afterAgain]] as const) {
        assert.ok(m.heapUsed <= base.heapUsed + 8 * MiB, `JS heap after the ${label} burst: ${mib(base.heapUsed)} → ${mib(m.heapUsed)}`);
        assert.ok(m.arrayBuffers <= base.arrayBuffers + 4 * MiB, `array buffers after the ${label} burst: ${mib(base.arrayBuffers)} → ${mib(m.arrayBuffers)}`);
      }
      // RSS: glibc keeps part of what it freed after the first burst's peak (20-90 MiB, depending
      // on the machine), so the first bound is wide. The second burst is the leak check for native
      // state: tunnels' TLS and socket buffers kept (>= 128 KiB moved each) would add >= 100 MiB
      // again, where reused free lists add next to nothing. Smaller per-connection leaks are the
      // soak test's job (growth over many cycles).
      assert.ok(rss <= baseRss + 160 * MiB, `RSS after GC ${mib(rss)} vs ${mib(baseRss)} before`);
      assert.ok(rssAgain <= rss + 32 * MiB, `RSS grew again with the second burst: ${mib(rss)} → ${mib(rssAgain)}`);
    } finally {
      inspector.close();
    }
    assert.equal(await burrow.stop(), 0);
  });

  /** Opens `count` connections that each send a byte and stay open; which ones got their echo. */
  async function holdOpen(port: number, count: number) {
    return Promise.all(
      Array.from({ length: count }, () => {
        const socket = net.connect({ host: '127.0.0.1', port });
        socket.on('error', () => {});
        socket.write('x');
        return new Promise<{ socket: net.Socket; echoed: boolean }>((resolve) => {
          const timer = setTimeout(() => resolve({ socket, echoed: false }), 10_000);
          socket.once('data', () => {
            clearTimeout(timer);
            resolve({ socket, echoed: true });
          });
          socket.once('close', () => {
            clearTimeout(timer);
            resolve({ socket, echoed: false });
          });
        });
      }),
    );
  }

  function prlimit(args: string[]): void {
    try {
      execFileSync('prlimit', args);
    } catch (error) {
      assert.fail(`prlimit (util-linux) is needed to set burrow's open-files limit: ${(error as Error).message}`);
    }
  }

  it('under a low open-files limit: connections beyond its room are refused with a clear line, the listener stays up and recovers', async () => {
    const limit = 64;
    const burrow = await startListener(world.tcpArgs().slice(1), { env: world.env, wrapper: ['prlimit', `--nofile=${limit}:${limit}`, '--'] });
    const pid = burrow.child.pid!;
    assert.equal(fdLimits(pid).soft, limit);
    assert.equal((await hashedRoundTrip(burrow.port, Buffer.from('warm'), 10_000)).bytes, 4);
    await eventually(() => world.proxy.openTunnels === 0, 5000, 'the warm-up tunnel to close');
    const baseFds = fdCount(pid);

    const outcomes = await holdOpen(burrow.port, 30);
    const full = /^burrow: error: refused the connection from 127\.0\.0\.1:\d+: (\d+) tunnels are open, all that the open-files limit of 64 leaves room for — .*ulimit/m;
    await eventually(() => full.test(burrow.stderr()), 5000, () => `the refusal line; stderr: ${burrow.stderr()}`);
    const room = Number(full.exec(burrow.stderr())![1]);
    assert.ok(room >= 1 && room < 30, `room for ${room} tunnels under a limit of ${limit}`);
    // Every connection within the room works (the slack covers the listener's other descriptors),
    // every one beyond it is refused: none is closed without a word.
    assert.equal(outcomes.filter((o) => o.echoed).length, room);
    assert.doesNotMatch(burrow.stderr(), /too many open files|Warning|\n\s+at /, 'no descriptor ran out; no warnings or stack traces');
    for (const o of outcomes) o.socket.destroy();
    assert.equal(burrow.child.exitCode, null, 'the listener is still running');
    const fds = await settle(() => fdCount(pid), (n) => n <= baseFds, 10_000);
    assert.ok(fds <= baseFds, `every descriptor is given back: ${baseFds} before, ${fds} after`);
    const data = Buffer.from('after the limit');
    assert.equal((await hashedRoundTrip(burrow.port, data, 10_000)).bytes, data.length, 'new connections work again');
    assert.equal(await burrow.stop(), 0);
  });

  it('out of descriptors while dialling (the limit lowered under a running listener): a clear line, and it recovers', async () => {
    const burrow = await startListener(world.tcpArgs().slice(1), { env: world.env });
    const pid = burrow.child.pid!;
    assert.equal((await hashedRoundTrip(burrow.port, Buffer.from('warm'), 10_000)).bytes, 4);
    await eventually(() => world.proxy.openTunnels === 0, 5000, 'the warm-up tunnel to close');
    await new Promise((r) => setTimeout(r, 300));
    const before = fdLimits(pid);
    // The limit bounds descriptor numbers, not their count: set it just above the lowest free
    // number, so the accept takes that one and the dial to the proxy finds none.
    const open = new Set(readdirSync(`/proc/${pid}/fd`).map(Number));
    let lowestFree = 0;
    while (open.has(lowestFree)) lowestFree++;
    prlimit(['--pid', String(pid), `--nofile=${lowestFree + 1}:${before.hard}`]);
    const [outcome] = await holdOpen(burrow.port, 1);
    assert.equal(outcome!.echoed, false);
    await eventually(() => /too many open files/.test(burrow.stderr()), 5000, () => `the error line; stderr: ${burrow.stderr()}`);
    assert.match(burrow.stderr(), /^burrow: #\d+ 127\.0\.0\.1:\d+: error: cannot connect to https:\/\/localhost:\d+ \(for git\.corp\.test:22\): too many open files — .*ulimit/m);
    assert.doesNotMatch(burrow.stderr(), /Warning|\n\s+at /, 'no Node warnings or stack traces');
    outcome!.socket.destroy();
    assert.equal(burrow.child.exitCode, null, 'the listener is still running');
    prlimit(['--pid', String(pid), `--nofile=${before.soft}:${before.hard}`]);
    const data = Buffer.from('after the limit');
    assert.equal((await hashedRoundTrip(burrow.port, data, 10_000)).bytes, data.length, 'new connections work again');
    assert.equal(await burrow.stop(), 0);
  });
});

/**
 * The same burst with the proxy in a process of its own, as in real use: then nothing slows the
 * proxy's side down to the test's pace, all 1,000 tunnels carry their 256 KiB at the same time,
 * and what each busy tunnel holds in burrow adds up (docs/performance.md "Memory").
 */
describe('burrow tcp: load, proxy in its own process', () => {
  after(() => stopProxyProcesses());

  it(`${CONNECTIONS} connections echoing 256 KiB at once, content-exact: burrow's peak RSS stays within 160 KiB per busy tunnel of idle`, async () => {
    // This process holds each connection twice (client, echo), the proxy and burrow twice each.
    const needed = 2 * CONNECTIONS + 200;
    const limits = fdLimits();
    assert.ok(limits.soft >= needed, `this test needs ${needed} file descriptors, the limit is ${limits.soft} (hard ${limits.hard}): raise it (ulimit -Hn ${needed}; ulimit -n ${needed})`);
    const echo = await startEchoServer();
    const proxy = await startProxyProcess({ routes: [{ from: `tcp+https://${DEST}`, to: `tcp://${echo.address}` }] });
    let burrow: Awaited<ReturnType<typeof startListener>> | undefined;
    try {
      assert.ok(fdLimits(proxy.pid).soft >= needed, `the proxy's fd limit: ${JSON.stringify(fdLimits(proxy.pid))}`);
      burrow = await startListener(proxy.tcpArgs(DEST).slice(1), { env: proxy.env });
      const pid = burrow.child.pid!;
      assert.ok(fdLimits(pid).soft >= 2 * CONNECTIONS + 100, `burrow's own fd limit: ${JSON.stringify(fdLimits(pid))}`);
      const warm = await echoBurst(burrow.port, 20, () => 64 * 1024, 1, 30_000);
      assert.equal(warm.ok, 20, warm.failures.join('; '));
      const idle = rssBytes(pid);

      const started = Date.now();
      const burst = await echoBurst(burrow.port, CONNECTIONS, () => 256 * 1024, 7, 90_000);
      const seconds = (Date.now() - started) / 1000;
      assert.equal(burst.ok, CONNECTIONS, `failed: ${burst.failures.join('; ')}`);
      const peak = peakRssBytes(pid);
      const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;
      process.stderr.write(`# load, proxy apart: ${CONNECTIONS} × 256 KiB echoed in ${seconds.toFixed(1)} s; burrow RSS ${mib(idle)} idle, peak ${mib(peak)}\n`);
      assert.equal(burrow.child.exitCode, null, 'the listener is still running');
      assert.doesNotMatch(burrow.stderr(), /Warning|error/, 'no Node warnings and no failures');
      // The bound is per busy tunnel above the idle listener, so that it holds on machines whose
      // allocator keeps more (a third more has been seen in CI): 160 KiB each. What it catches: a
      // tunnel holding a whole 256 KiB echo (lost backpressure), or ~320 KiB per busy tunnel, what
      // whole 64 KiB chunks with their encrypted copies cost (the upload is sliced to avoid it).
      // The 150 MiB target itself is the bench's (section burst), which reports whether a run met it.
      const bound = idle + CONNECTIONS * 160 * 1024;
      assert.ok(peak <= bound, `burrow's peak RSS ${mib(peak)} (idle ${mib(idle)}) with ${CONNECTIONS} busy tunnels; the bound is ${mib(bound)} (idle + 160 KiB per tunnel)`);
      assert.equal(await burrow.stop(), 0);
    } finally {
      // A failed assertion must not leave the listener running (and the test process waiting on it).
      if (burrow && burrow.child.exitCode === null && burrow.child.signalCode === null) burrow.child.kill('SIGKILL');
      await proxy.stop();
      await echo.close();
    }
  });
});
