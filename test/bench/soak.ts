/**
 * `npm run soak`: a long soak of one burrow listener (default 10 minutes): connect/transfer/close
 * cycles of `--concurrency` sha256-checked echo round trips, with burrow's RSS and open file
 * descriptors sampled after every cycle. Prints a per-minute timeline and writes
 * bench/results/soak.{md,json}. The short version runs in `npm test` (test/e2e/soak.test.ts).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startListener, stopAll } from '../helpers/burrow.js';
import { repoRoot } from '../helpers/fixtures.js';
import { echoBurst, fdCount, median, rssBytes, MiB, rssTrend, soak, type SoakSample } from '../helpers/load.js';
import { startWorld } from '../helpers/world.js';
import { loadAverage, machine } from './proc.js';

const HELP = `npm run soak -- [options]

  --minutes N       how long to run                       (10)
  --concurrency N   connections per cycle                 (20)
  --kib N           KiB each connection sends and gets back (64)
  --out DIR         where soak.{md,json} go               (bench/results)
`;

function parse(argv: string[]): { minutes: number; concurrency: number; kib: number; out: string } {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      process.stdout.write(HELP);
      process.exit(0);
    }
    const m = /^--(minutes|concurrency|kib|out)(?:=(.*))?$/.exec(arg);
    if (!m) throw new Error(`unknown argument ${arg} (try --help)`);
    flags.set(m[1]!, m[2] ?? argv[++i] ?? '');
  }
  const num = (flag: string, fallback: number): number => {
    const raw = flags.get(flag);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${flag} must be a positive number, not ${raw}`);
    return n;
  };
  return { minutes: num('minutes', 10), concurrency: Math.round(num('concurrency', 20)), kib: Math.round(num('kib', 64)), out: flags.get('out') ?? join(repoRoot, 'bench', 'results') };
}

const log = (line: string): void => void process.stderr.write(`${line}\n`);

interface Minute {
  minute: number;
  cycles: number;
  rssMedianMiB: number;
  rssMaxMiB: number;
  fdsMax: number;
}

function timeline(samples: SoakSample[]): Minute[] {
  const byMinute = new Map<number, SoakSample[]>();
  for (const s of samples) {
    const m = Math.floor(s.t / 60);
    byMinute.set(m, [...(byMinute.get(m) ?? []), s]);
  }
  return [...byMinute.entries()].map(([minute, list]) => ({
    minute: minute + 1,
    cycles: list.length,
    rssMedianMiB: median(list.map((s) => s.rssMiB)),
    rssMaxMiB: Math.max(...list.map((s) => s.rssMiB)),
    fdsMax: Math.max(...list.map((s) => s.fds)),
  }));
}

async function main(): Promise<void> {
  const settings = parse(process.argv.slice(2));
  const world = await startWorld();
  try {
    // Warnings and errors only: a line per tunnel event would be 270,000 lines of noise here, and
    // any line that remains is worth a look.
    const burrow = await startListener(world.tcpArgs(undefined, '--log-level', 'warn').slice(1), { env: world.env });
    const pid = burrow.child.pid!;
    const bytes = settings.kib * 1024;
    await echoBurst(burrow.port, settings.concurrency, () => bytes, 1, 30_000);
    await new Promise((r) => setTimeout(r, 500));
    const baseline = { rssMiB: rssBytes(pid) / MiB, fds: fdCount(pid) };
    log(`soak: ${settings.minutes} min of cycles of ${settings.concurrency} × ${settings.kib} KiB echo through one listener (pid ${pid}); RSS ${baseline.rssMiB.toFixed(1)} MiB, ${baseline.fds} fds after warm-up`);
    let nextReport = 30;
    const result = await soak({
      port: burrow.port,
      pid,
      durationMs: settings.minutes * 60_000,
      maxCycles: Number.MAX_SAFE_INTEGER,
      concurrency: settings.concurrency,
      bytes,
      onSample: (s) => {
        if (s.t < nextReport) return;
        nextReport += 30;
        log(`soak: ${s.t.toFixed(0).padStart(4)} s  cycle ${String(s.cycle).padStart(6)}  RSS ${s.rssMiB.toFixed(1).padStart(6)} MiB  fds ${s.fds}`);
      },
    });
    await new Promise((r) => setTimeout(r, 2000));
    const end = { rssMiB: rssBytes(pid) / MiB, fds: fdCount(pid) };
    const stderrLines = burrow.stderr().split('\n').filter((l) => l && !l.startsWith('burrow: listening on')).length;
    await burrow.stop();
    const trend = rssTrend(result.samples);
    const minutes = timeline(result.samples);
    const summary = {
      date: new Date().toISOString(),
      machine: machine(),
      loadAverageEnd: loadAverage(),
      settings,
      cycles: result.cycles,
      connections: result.connections,
      failed: result.failed,
      failures: result.failures,
      gibEachWay: result.bytesEachWay / 2 ** 30,
      seconds: result.seconds,
      baseline,
      end,
      rss: trend,
      fdsMax: Math.max(...result.samples.map((s) => s.fds)),
      stderrLines,
      timeline: minutes,
    };
    const fmt = (n: number) => n.toFixed(1);
    const md = [
      `# burrow soak (${new Date().toISOString().slice(0, 10)})`,
      '',
      `${fmt(result.seconds / 60)} min of connect/transfer/close cycles through one burrow listener: ${result.cycles} cycles of ${settings.concurrency} concurrent ` +
        `connections, ${settings.kib} KiB echoed each (sha256-checked): ${result.connections} tunnels, ${fmt(summary.gibEachWay)} GiB each way, ${result.failed} failed. ` +
        `Machine: ${summary.machine.cpu}, ${summary.machine.cores} cores, Node ${summary.machine.node}, burrow ${summary.machine.burrowCommit}; load average at the end ${fmt(summary.loadAverageEnd)}.`,
      '',
      `| | RSS (MiB) | open fds |`,
      `|---|--:|--:|`,
      `| after warm-up | ${fmt(baseline.rssMiB)} | ${baseline.fds} |`,
      `| early median (after the first 20 %) | ${fmt(trend.earlyMiB)} | |`,
      `| late median (last third) | ${fmt(trend.lateMiB)} | |`,
      `| highest sample | ${fmt(trend.maxMiB)} | ${summary.fdsMax} |`,
      `| 2 s after the last cycle | ${fmt(end.rssMiB)} | ${end.fds} |`,
      '',
      `RSS growth early → late: ${trend.growthMiB >= 0 ? '+' : ''}${fmt(trend.growthMiB)} MiB. Warning or error lines on burrow's stderr (run at --log-level warn): ${stderrLines}.`,
      '',
      '| minute | cycles | RSS median | RSS max | fds max |',
      '|--:|--:|--:|--:|--:|',
      ...minutes.map((m) => `| ${m.minute} | ${m.cycles} | ${fmt(m.rssMedianMiB)} | ${fmt(m.rssMaxMiB)} | ${m.fdsMax} |`),
      '',
    ].join('\n');
    mkdirSync(settings.out, { recursive: true });
    writeFileSync(join(settings.out, 'soak.json'), `${JSON.stringify({ ...summary, samples: result.samples.filter((_, i) => i % 10 === 0) }, null, 2)}\n`);
    writeFileSync(join(settings.out, 'soak.md'), md);
    process.stdout.write(md);
    log(`soak: wrote ${join(settings.out, 'soak')}.{md,json}`);
    if (result.failed > 0) process.exitCode = 1;
  } finally {
    await stopAll();
    await world.close();
  }
}

main().catch((error: unknown) => {
  log(`soak: ${(error as Error).stack ?? String(error)}`);
  void stopAll().finally(() => process.exit(1));
});
