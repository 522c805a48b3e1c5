/**
 * A short soak: connect/transfer/close cycles through one listener for ~25 s. RSS stays flat
 * (no growth from the early to the late part of the run) and descriptors return to baseline.
 * The long run (10 minutes) is `npm run soak` (test/bench/soak.ts).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { startListener } from '../helpers/burrow.js';
import { attachInspector, echoBurst, fdCount, INSPECT_ENV, MiB, rssBytes, rssTrend, settle, soak } from '../helpers/load.js';
import { eventually, suiteWorld } from '../helpers/world.js';

const SECONDS = 25;
const CONCURRENCY = 20;
const BYTES = 64 * 1024;

describe('burrow tcp: soak', () => {
  const world = suiteWorld();

  it(`${SECONDS} s of connect/transfer/close cycles: flat RSS, descriptors back to baseline`, async () => {
    const burrow = await startListener(world.tcpArgs().slice(1), { env: { ...world.env, ...INSPECT_ENV } });
    const pid = burrow.child.pid!;
    const inspector = await attachInspector(burrow.stderr());
    // A process with a debugger attached waits for it to leave before exiting.
    after(() => inspector.close());
    const warm = await echoBurst(burrow.port, CONCURRENCY, () => BYTES, 1, 30_000);
    assert.equal(warm.ok, CONCURRENCY, warm.failures.join('; '));
    await eventually(() => world.proxy.openTunnels === 0, 5000, 'warm-up tunnels to close');
    const baseFds = fdCount(pid);
    await inspector.collectGarbage();
    const before = { rss: rssBytes(pid), heap: (await inspector.memoryUsage()).heapUsed };

    const result = await soak({ port: burrow.port, pid, durationMs: SECONDS * 1000, maxCycles: 5000, concurrency: CONCURRENCY, bytes: BYTES });
    assert.equal(result.failed, 0, result.failures.join('; '));
    assert.ok(result.samples.length >= 30, `enough cycles to see a trend: ${result.samples.length}`);
    const trend = rssTrend(result.samples);
    process.stderr.write(
      `# soak: ${result.cycles} cycles, ${result.connections} connections in ${result.seconds.toFixed(0)} s; RSS early ${trend.earlyMiB.toFixed(1)} MiB, ` +
        `late ${trend.lateMiB.toFixed(1)} MiB, max ${trend.maxMiB.toFixed(1)} MiB; fds ${baseFds} → ${result.samples.at(-1)?.fds}\n`,
    );
    // As sampled, RSS moves in a band set by GC timing (V8 grows the heap, then collects): here
    // about 66–86 MiB, and the median of a third of the run can sit anywhere in it. The medians
    // catch gross growth; a leak of 8 KiB per tunnel would move them by ~30 MiB between the windows.
    assert.ok(trend.growthMiB <= 20, `RSS grew from ${trend.earlyMiB.toFixed(1)} to ${trend.lateMiB.toFixed(1)} MiB (median of early vs late samples)`);
    // The precise check: after a forced full GC, before and after the run. What survives a GC
    // after ~6,000 tunnels is what they leaked: ≥ 1 KiB each would be ≥ 6 MiB of heap.
    await inspector.collectGarbage();
    const afterGc = { rss: rssBytes(pid), heap: (await inspector.memoryUsage()).heapUsed };
    process.stderr.write(`# soak after GC: RSS ${(before.rss / MiB).toFixed(1)} → ${(afterGc.rss / MiB).toFixed(1)} MiB, heap ${(before.heap / MiB).toFixed(1)} → ${(afterGc.heap / MiB).toFixed(1)} MiB\n`);
    assert.ok(afterGc.heap <= before.heap + 4 * MiB, `JS heap after GC: ${(before.heap / MiB).toFixed(1)} → ${(afterGc.heap / MiB).toFixed(1)} MiB`);
    assert.ok(afterGc.rss <= before.rss + 16 * MiB, `RSS after GC: ${(before.rss / MiB).toFixed(1)} → ${(afterGc.rss / MiB).toFixed(1)} MiB`);
    // Every cycle waits for its connections to close, so each sample should be at baseline.
    assert.ok(Math.max(...result.samples.map((s) => s.fds)) <= baseFds + 2, `descriptors during the run: ${Math.max(...result.samples.map((s) => s.fds))} (baseline ${baseFds})`);
    const fds = await settle(() => fdCount(pid), (n) => n <= baseFds, 10_000);
    assert.ok(fds <= baseFds, `descriptors after the run: ${fds} (baseline ${baseFds})`);
    assert.doesNotMatch(burrow.stderr(), /Warning|error:/);
    inspector.close();
    assert.equal(await burrow.stop(), 0);
  });
});
