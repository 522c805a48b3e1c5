/**
 * A short soak: connect/transfer/close cycles through one listener for ~25 s. RSS stays flat
 * (no growth from the early to the late part of the run) and descriptors return to baseline.
 * The long run (10 minutes) is `npm run soak` (test/bench/soak.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startListener, stopAll } from '../helpers/burrow.js';
import { echoBurst, fdCount, rssTrend, settle, soak } from '../helpers/load.js';
import { eventually, startWorld, type World } from '../helpers/world.js';

const SECONDS = 25;
const CONCURRENCY = 20;
const BYTES = 64 * 1024;

describe('burrow tcp: soak', () => {
  let world: World;
  before(async () => {
    world = await startWorld();
  });
  after(async () => {
    await stopAll();
    await world.close();
  });

  it(`${SECONDS} s of connect/transfer/close cycles: flat RSS, descriptors back to baseline`, async () => {
    const burrow = await startListener(world.tcpArgs().slice(1), { env: world.env });
    const pid = burrow.child.pid!;
    const warm = await echoBurst(burrow.port, CONCURRENCY, () => BYTES, 1, 30_000);
    assert.equal(warm.ok, CONCURRENCY, warm.failures.join('; '));
    await eventually(() => world.proxy.openTunnels === 0, 5000, 'warm-up tunnels to close');
    const baseFds = fdCount(pid);

    const result = await soak({ port: burrow.port, pid, durationMs: SECONDS * 1000, maxCycles: 5000, concurrency: CONCURRENCY, bytes: BYTES });
    assert.equal(result.failed, 0, result.failures.join('; '));
    assert.ok(result.samples.length >= 30, `enough cycles to see a trend: ${result.samples.length}`);
    const trend = rssTrend(result.samples);
    process.stderr.write(
      `# soak: ${result.cycles} cycles, ${result.connections} connections in ${result.seconds.toFixed(0)} s; RSS early ${trend.earlyMiB.toFixed(1)} MiB, ` +
        `late ${trend.lateMiB.toFixed(1)} MiB, max ${trend.maxMiB.toFixed(1)} MiB; fds ${baseFds} → ${result.samples.at(-1)?.fds}\n`,
    );
    // Between the two windows thousands of tunnels open and close (each moving 128 KiB through
    // four sockets). A leak of 4 KiB per tunnel would add more than this; GC timing alone moves
    // RSS by a few MiB from sample to sample, which medians of many samples smooth out.
    assert.ok(trend.growthMiB <= 12, `RSS grew from ${trend.earlyMiB.toFixed(1)} to ${trend.lateMiB.toFixed(1)} MiB (median of early vs late samples)`);
    // Every cycle waits for its connections to close, so each sample should be at baseline.
    assert.ok(Math.max(...result.samples.map((s) => s.fds)) <= baseFds + 2, `descriptors during the run: ${Math.max(...result.samples.map((s) => s.fds))} (baseline ${baseFds})`);
    const fds = await settle(() => fdCount(pid), (n) => n <= baseFds, 10_000);
    assert.ok(fds <= baseFds, `descriptors after the run: ${fds} (baseline ${baseFds})`);
    assert.doesNotMatch(burrow.stderr(), /Warning|error/);
    assert.equal(await burrow.stop(), 0);
  });
});
