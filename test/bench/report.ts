/** Turns a bench run into its summary (medians, ratios, targets), a markdown table and an SVG chart. */
import { PATH_LABELS, type PathId } from './clients.js';
import { GiB, median, type ScaleResult, type SlowResult, type ThroughputRun } from './measure.js';
import { CLK_TCK, type Machine } from './proc.js';
import { SSH_PATH_LABELS, type SshPathId, type SshResult } from './ssh.js';
import { UDP_PAYLOAD } from './udp.js';

export interface Timing {
  medianMs: number;
  p90Ms: number;
  runs: number;
}

/** What a run measured with (run.ts's settings, as written into the results). */
export interface BenchSettings {
  quick: boolean;
  sizeMiB: number;
  reps: number;
  rounds: number;
  setupReps: number;
  scaleConnections: number;
  scaleReps: number;
  burstConnections: number;
  burstKiB: number;
  burstReps: number;
  slowSeconds: number;
  slowConcurrent: number;
  udpDatagrams: number;
  udpWindow: number;
  sshCount: number;
  sshReps: number;
  sshPaths: SshPathId[];
  paths: PathId[];
  sections: string[];
}

export interface BenchResult {
  date: string;
  settings: BenchSettings;
  machine: Machine;
  loadAverage: { start: number; end: number };
  /** Cores' worth of CPU the machine used in the second before the run (other work). */
  machineBusyBefore: number;
  durationSeconds: number;
  notes: string[];
  throughput: ThroughputRun[];
  latency: Record<string, { medianUs: number; p99Us: number; runs: number; rounds: number }>;
  setup: Record<string, Timing>;
  startup: Record<string, Timing>;
  /** The scale run with the highest peak RSS, and the peaks of all scale runs. */
  scale: ScaleResult | undefined;
  scalePeaks: number[];
  /** The echo burst with the highest peak RSS, and the peaks of all burst runs. */
  burst: ScaleResult | undefined;
  burstPeaks: number[];
  slow: SlowResult | undefined;
  udp: UdpResult | undefined;
  ssh: SshResult | undefined;
  errors: string[];
  summary?: Summary;
}

/** One side of the UDP row: medians over the repetitions. */
export interface UdpFigures {
  perSecond: number;
  /** Datagrams not echoed within 500 ms, over all rate runs. */
  lost: number;
  /** CPU of the burrow process per datagram echoed (NaN for the direct path). */
  cpuUsPerDatagram: number;
  /** CPU seconds / wall seconds in the rate runs of burrow, the proxy's process (the echo in it) and the load generator. */
  clientUtil: number;
  proxyUtil: number;
  loadgenUtil: number;
  medianUs: number;
  p99Us: number;
  runs: number;
}

/** `burrow udp` against the same UDP echo reached directly. */
export interface UdpResult {
  datagrams: number;
  window: number;
  rounds: number;
  direct: UdpFigures;
  burrow: UdpFigures;
}

export interface DirectionSummary {
  mibPerSecond: number;
  /** Client CPU seconds per GiB moved (NaN where the client is the load generator itself). */
  cpuPerGiB: number;
  /** The kernel's part of it. */
  systemCpuPerGiB: number;
  /** CPU seconds / wall seconds of each process, median over runs (1 = one core busy). */
  clientUtil: number;
  proxyUtil: number;
  loadgenUtil: number;
  /** The whole machine (all cores), and what is left after our three processes (kernel softirq, other load). */
  machineUtil: number;
  restUtil: number;
  /** Half the range of the runs' MiB/s over their median: how much repetitions disagree. */
  spread: number;
  runs: number;
}

export interface Target {
  what: string;
  measured: string;
  target: string;
  /** undefined: not measured in this run. */
  met: boolean | undefined;
}

export interface Summary {
  throughput: Partial<Record<PathId, { upload?: DirectionSummary; download?: DirectionSummary }>>;
  targets: Target[];
}

const DIRECTIONS = ['upload', 'download'] as const;

/**
 * The Go client in the same mode as a path: what each figure is compared with. The Go client
 * copies bytes as pomerium-cli does, the client users would otherwise run.
 */
export function goPeer(id: string): 'go-listener' | 'go-stdio' {
  return ['listener', 'ws', 'go-listener', 'direct', 'tls'].includes(id) ? 'go-listener' : 'go-stdio';
}

export function summarize(result: BenchResult): Summary {
  const throughput: Summary['throughput'] = {};
  for (const id of result.settings.paths) {
    for (const direction of DIRECTIONS) {
      const runs = result.throughput.filter((r) => r.path === id && r.direction === direction);
      if (runs.length === 0) continue;
      (throughput[id] ??= {})[direction] = {
        mibPerSecond: median(runs.map((r) => r.mibPerSecond)),
        cpuPerGiB: median(runs.map((r) => r.clientCpu / (r.bytes / GiB))),
        systemCpuPerGiB: median(runs.map((r) => r.clientSystemCpu / (r.bytes / GiB))),
        clientUtil: median(runs.map((r) => r.clientCpu / r.seconds)),
        proxyUtil: median(runs.map((r) => r.proxyCpu / r.seconds)),
        loadgenUtil: median(runs.map((r) => r.loadgenCpu / r.seconds)),
        machineUtil: median(runs.map((r) => r.machineCpu / r.seconds)),
        restUtil: median(runs.map((r) => (r.machineCpu - r.proxyCpu - r.loadgenCpu - (Number.isFinite(r.clientCpu) ? r.clientCpu : 0)) / r.seconds)),
        spread: (Math.max(...runs.map((r) => r.mibPerSecond)) - Math.min(...runs.map((r) => r.mibPerSecond))) / 2 / median(runs.map((r) => r.mibPerSecond)),
        runs: runs.length,
      };
    }
  }

  const targets: Target[] = [];
  for (const id of ['listener', 'stdio'] as const) {
    for (const direction of DIRECTIONS) {
      const b = throughput[id]?.[direction];
      const g = throughput[goPeer(id)]?.[direction];
      const ratio = b && g ? b.mibPerSecond / g.mibPerSecond : Number.NaN;
      targets.push({
        what: `throughput, burrow ${id}, ${direction}`,
        measured: `${x(ratio, 3)} Go client (${f(b?.mibPerSecond)} vs ${f(g?.mibPerSecond)} MiB/s)`,
        target: '≥ 1.0×',
        met: Number.isFinite(ratio) ? ratio >= 1.0 : undefined,
      });
    }
  }
  for (const id of ['listener', 'stdio'] as const) {
    for (const direction of DIRECTIONS) {
      const b = throughput[id]?.[direction];
      const g = throughput[goPeer(id)]?.[direction];
      const ratio = b && g ? b.cpuPerGiB / g.cpuPerGiB : Number.NaN;
      targets.push({
        what: `client CPU per GiB, burrow ${id}, ${direction}`,
        measured: `${x(ratio, 3)} Go client (${f(b?.cpuPerGiB, 2)} vs ${f(g?.cpuPerGiB, 2)} s/GiB)`,
        target: '≤ 1.1×',
        met: Number.isFinite(ratio) ? ratio <= 1.1 : undefined,
      });
    }
  }
  for (const id of ['listener', 'stdio'] as const) {
    const b = result.latency[id];
    const g = result.latency[goPeer(id)];
    const ratio = b && g ? b.medianUs / g.medianUs : Number.NaN;
    targets.push({
      what: `latency (median RTT), burrow ${id}`,
      measured: `${x(ratio, 3)} Go client (${f(b?.medianUs, 0)} vs ${f(g?.medianUs, 0)} µs)`,
      target: '≤ 1.0×',
      met: Number.isFinite(ratio) ? ratio <= 1.0 : undefined,
    });
  }
  {
    const b = result.latency.stdio;
    const g = result.latency['go-stdio'];
    const ratio = b && g ? b.p99Us / g.p99Us : Number.NaN;
    targets.push({
      what: 'latency (p99 RTT), burrow stdio',
      measured: `${x(ratio, 3)} Go client (${f(b?.p99Us, 0)} vs ${f(g?.p99Us, 0)} µs)`,
      target: '≤ 1.2×',
      met: Number.isFinite(ratio) ? ratio <= 1.2 : undefined,
    });
  }
  {
    const b = result.startup.stdio;
    const p = result.startup.plain;
    const above = b && p ? b.medianMs - p.medianMs : Number.NaN;
    targets.push({
      what: 'start-up: stdio process to first byte, above the plain Node client',
      measured: `${signed(above)} ms (${f(b?.medianMs)} vs ${f(p?.medianMs)} ms; Go client ${f(result.startup['go-stdio']?.medianMs)} ms)`,
      target: '≤ +5 ms',
      met: Number.isFinite(above) ? above <= 5 : undefined,
    });
  }
  if (result.slow) {
    const s = result.slow;
    targets.push({
      what: `peak RSS, listener, ${s.concurrent.connections} concurrent connections + one slow consumer`,
      measured: `${f(s.listenerPeakMiB)} MiB`,
      target: '≤ 100 MiB',
      met: s.concurrent.connections >= 200 ? s.listenerPeakMiB <= 100 : undefined,
    });
  } else {
    targets.push({ what: 'peak RSS, listener, 200 concurrent connections + one slow consumer', measured: 'not run', target: '≤ 100 MiB', met: undefined });
  }
  if (result.scale) {
    const s = result.scale;
    targets.push({
      what: `peak RSS, listener, ${s.connections} concurrent connections × 1 MiB`,
      measured: `${f(s.peakMiB)} MiB${s.failed ? ` (${s.failed} failed)` : ''}`,
      target: s.connections >= 1000 ? '≤ 150 MiB' : '≤ 150 MiB at 1,000 (ran fewer)',
      met: s.connections >= 1000 ? s.peakMiB <= 150 && s.failed === 0 : undefined,
    });
  } else {
    targets.push({ what: 'peak RSS, listener, 1,000 concurrent connections × 1 MiB', measured: 'not run', target: '≤ 150 MiB', met: undefined });
  }
  {
    const what = 'peak RSS, listener, 1,000 connections echoing 256 KiB at once';
    const b = result.burst;
    if (b) {
      const full = b.connections >= 1000 && b.bytesEach >= 256 * 1024;
      targets.push({
        what: full ? what : `peak RSS, listener, ${b.connections} connections echoing ${f(b.bytesEach / 1024, 0)} KiB at once`,
        measured: `${f(b.peakMiB)} MiB${b.failed ? ` (${b.failed} failed)` : ''}`,
        target: full ? '≤ 150 MiB' : '≤ 150 MiB at 1,000 × 256 KiB (ran less)',
        met: full ? b.peakMiB <= 150 && b.failed === 0 : undefined,
      });
    } else {
      targets.push({ what, measured: 'not run', target: '≤ 150 MiB', met: undefined });
    }
  }
  targets.push(...sshTargets(result.ssh));
  return { throughput, targets };
}

function f(n: number | undefined, digits = 1): string {
  return n !== undefined && Number.isFinite(n) ? n.toFixed(digits) : '–';
}

function x(ratio: number | undefined, digits = 2): string {
  return ratio !== undefined && Number.isFinite(ratio) ? `${ratio.toFixed(digits)}×` : '–';
}

const mark = (met: boolean | undefined): string => (met === undefined ? '–' : met ? '✓' : '✗');

function label(id: string): string {
  if (id === 'node') return '`node -e 0` (reference)';
  if (id === 'version') return '`burrow --version` (loading only)';
  return PATH_LABELS[id as PathId] ?? id;
}

/** A markdown table; `left` lists the columns that hold words (the others are right-aligned numbers). */
function table(head: string[], rows: string[][], left: number[] = [0]): string {
  const align = head.map((_, i) => (left.includes(i) ? '---' : '--:'));
  const full = rows.map((r) => head.map((_, i) => r[i] ?? ''));
  return [head, align, ...full].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

const signed = (n: number, digits = 1): string => (Number.isFinite(n) ? `${n >= 0 ? '+' : '−'}${Math.abs(n).toFixed(digits)}` : '–');

/**
 * What limits a throughput run. A single-threaded process near one full core is saturated; the
 * machine near all its cores is CPU-bound as a whole (then the busiest process is named);
 * otherwise the processes mostly wait on each other (hand-offs, wake-ups).
 */
function bottleneck(d: DirectionSummary, cores: number): string {
  const busy: Array<[string, number]> = [
    ['client', d.clientUtil],
    ['proxy', d.proxyUtil],
    ['load generator', d.loadgenUtil],
  ];
  const [name, top] = busy.filter(([, u]) => Number.isFinite(u)).sort((a, b) => b[1] - a[1])[0] ?? ['?', Number.NaN];
  if (top >= 0.9) return `${name} (one core)`;
  if (d.machineUtil >= cores * 0.85) return `CPU: all cores busy; most: ${name}`;
  return `no core full: hand-offs`;
}

const cores = (n: number): string => `${n * 100}%`;
const pct = (u: number): string => (Number.isFinite(u) ? `${Math.round(u * 100)}%` : '–');

export function toMarkdown(result: BenchResult): string {
  const summary = (result.summary ??= summarize(result));
  const m = result.machine;
  const s = result.settings;
  const lines: string[] = [];
  lines.push(`# burrow benchmark${s.quick ? ' (quick run)' : ''}`);
  lines.push('');
  lines.push(`${result.date.slice(0, 16).replace('T', ' ')} UTC · ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB · ${m.os}, Linux ${m.kernel} · Node ${m.node} · ${m.proxytunnel ?? 'proxytunnel not installed'} · ${m.go ?? 'go not installed'} · burrow ${m.burrowCommit}`);
  lines.push('');
  lines.push(
    `Everything on loopback; client under test, proxy (+ sink/source) and load generator are separate processes sharing the ${m.cores} cores. ` +
      `Medians of ${s.reps} interleaved runs; ${s.sizeMiB} MiB per throughput run; ${s.rounds} round trips per latency run; ` +
      `machine ${pct(result.machineBusyBefore)} busy (of one core) just before, load average ${f(result.loadAverage.start, 2)} at the start and ${f(result.loadAverage.end, 2)} at the end; took ${f(result.durationSeconds, 0)} s. ` +
      'The proxy is the project\'s Node stand-in for Pomerium (test/helpers/fake-pomerium.ts), not Pomerium itself.',
  );
  lines.push('');

  const tp = summary.throughput;
  const ratio = (a: number | undefined, b: number | undefined): string => x(a !== undefined && b !== undefined ? a / b : Number.NaN);
  if (result.throughput.length > 0) {
    lines.push(`## Throughput (MiB/s, ${s.sizeMiB} MiB one way)`);
    lines.push('');
    const rows = s.paths
      .filter((id) => tp[id])
      .map((id) => {
        const up = tp[id]?.upload?.mibPerSecond;
        const down = tp[id]?.download?.mibPerSecond;
        return [
          label(id),
          f(up, 0),
          ratio(up, tp[goPeer(id)]?.upload?.mibPerSecond),
          ratio(up, tp.tls?.upload?.mibPerSecond),
          ratio(up, tp.direct?.upload?.mibPerSecond),
          f(down, 0),
          ratio(down, tp[goPeer(id)]?.download?.mibPerSecond),
          ratio(down, tp.tls?.download?.mibPerSecond),
          ratio(down, tp.direct?.download?.mibPerSecond),
          `±${pct(tp[id]?.upload?.spread ?? Number.NaN)} / ±${pct(tp[id]?.download?.spread ?? Number.NaN)}`,
        ];
      });
    lines.push(table(['path', 'upload', '× Go', '× TLS hop', '× direct', 'download', '× Go', '× TLS hop', '× direct', 'run-to-run ↑ / ↓'], rows));
    lines.push('');
    lines.push(
      '× Go: over the Go client in the same mode (listener paths against its listener, stdio paths against its stdio). ' +
        'Run-to-run: half the range of the repetitions over their median; ratios closer to 1 than that are a draw.',
    );
    lines.push('');
    lines.push('## Client CPU per GiB and who is busy');
    lines.push('');
    lines.push(
      'CPU = utime + stime of the client process from /proc/<pid>/stat over the run, per GiB moved (target ≤ 1.1× the Go client in the same mode). ' +
        'The next columns are CPU seconds / wall seconds of each process (100% = one core); "rest" is the machine\'s busy time (/proc/stat) ' +
        'minus those processes: kernel softirq work for loopback TCP not charged to a process, and any other load on the machine. ' +
        'A single-threaded process near 100% is the limit.',
    );
    lines.push('');
    const cpuRows: string[][] = [];
    for (const id of s.paths) {
      for (const direction of DIRECTIONS) {
        const d = tp[id]?.[direction];
        if (!d) continue;
        cpuRows.push([
          label(id),
          direction,
          f(d.cpuPerGiB, 2),
          f(d.systemCpuPerGiB, 2),
          ratio(d.cpuPerGiB, tp[goPeer(id)]?.[direction]?.cpuPerGiB),
          pct(d.clientUtil),
          pct(d.proxyUtil),
          pct(d.loadgenUtil),
          pct(d.restUtil),
          `${pct(d.machineUtil)} of ${cores(m.cores)}`,
          bottleneck(d, m.cores),
        ]);
      }
    }
    lines.push(
      table(
        ['path', 'direction', 'client CPU s/GiB', 'of it kernel', '× Go', 'client', 'proxy + sink', 'load gen.', 'rest', 'machine', 'likely limit'],
        cpuRows,
        [0, 1, 10],
      ),
    );
    lines.push('');
    const tick = 1 / CLK_TCK / (s.sizeMiB / 1024);
    lines.push(
      'For the direct and TLS-hop paths the load generator is the client (no separate process), so it has no client CPU figure. ' +
        `CPU times come in clock ticks of ${1000 / CLK_TCK} ms: at ${s.sizeMiB} MiB one tick is ${tick.toFixed(2)} s/GiB${tick > 0.05 ? ', too coarse for close CPU ratios: use the full run' : ''}.`,
    );
    lines.push('');
  }

  if (Object.keys(result.latency).length > 0) {
    lines.push(`## Latency (${s.rounds} round trips of 64 bytes through an echo)`);
    lines.push('');
    const rows = s.paths
      .filter((id) => result.latency[id])
      .map((id) => {
        const l = result.latency[id]!;
        const g = result.latency[goPeer(id)];
        return [label(id), f(l.medianUs, 0), f(l.p99Us, 0), ratio(l.medianUs, g?.medianUs), ratio(l.p99Us, g?.p99Us)];
      });
    lines.push(table(['path', 'median µs', 'p99 µs', 'median × Go', 'p99 × Go'], rows));
    lines.push('');
  }

  if (Object.keys(result.setup).length > 0 || Object.keys(result.startup).length > 0) {
    lines.push('## Connection set-up and start-up (to the first byte from upstream)');
    lines.push('');
    const rows: string[][] = [];
    for (const [id, t] of Object.entries(result.setup)) rows.push([`${label(id)}: new connection`, f(t.medianMs, 2), f(t.p90Ms, 2), '']);
    const node = result.startup.node;
    for (const [id, t] of Object.entries(result.startup)) {
      rows.push([
        id === 'node' || id === 'version' ? `${label(id)}: spawn to exit` : `${label(id)}: new process`,
        f(t.medianMs, 1),
        f(t.p90Ms, 1),
        id === 'node' || !node ? '' : signed(t.medianMs - node.medianMs),
      ]);
    }
    lines.push(table(['what', 'median ms', 'p90 ms', 'ms above node -e 0'], rows));
    lines.push('');
    lines.push('Listener paths: `connect()` to the upstream\'s greeting byte with the token cached (a TLS handshake and a CONNECT each time). Processes: spawn to the greeting byte.');
    lines.push('');
  }

  if (result.udp) {
    const u = result.udp;
    lines.push(`## UDP (burrow udp through the proxy's CONNECT-UDP vs the same echo directly; ${UDP_PAYLOAD}-byte datagrams)`);
    lines.push('');
    const rows = (['direct', 'burrow'] as const).map((id) => {
      const r = u[id];
      return [
        id === 'direct' ? 'direct UDP (ceiling)' : 'burrow udp',
        f(r.perSecond, 0),
        id === 'burrow' ? x(r.perSecond / u.direct.perSecond) : '',
        String(r.lost),
        f(r.medianUs, 0),
        f(r.p99Us, 0),
        id === 'burrow' ? `${x(r.medianUs / u.direct.medianUs)} / ${x(r.p99Us / u.direct.p99Us)}` : '',
        id === 'burrow' ? f(r.cpuUsPerDatagram, 1) : '',
        `${id === 'burrow' ? `${pct(r.clientUtil)} / ` : ''}${pct(r.proxyUtil)} / ${pct(r.loadgenUtil)}`,
      ];
    });
    lines.push(
      table(['path', 'datagrams/s', '× direct', 'lost', 'median RTT µs', 'p99 µs', 'median / p99 × direct', 'burrow CPU µs per datagram', 'busy: burrow / proxy + echo / load gen.'], rows),
    );
    lines.push('');
    lines.push(
      `Rate: ${u.datagrams} datagrams echoed with ${u.window} in flight (each reply sends the next; one not back within 500 ms counts as lost and frees its slot). ` +
        `Round trip: ${u.rounds} single datagrams after 100 unrecorded ones. One local socket, so one burrow session; the echo runs in the proxy's process. Medians of ${u.direct.runs} interleaved runs.`,
    );
    lines.push('');
  }

  if (result.ssh) lines.push(...sshTable(result.ssh));

  if (result.scale || result.burst || result.slow) {
    lines.push('## Scale and memory (burrow listener, a fresh process for each run)');
    lines.push('');
    const rows: string[][] = [];
    if (result.scale) {
      const sc = result.scale;
      rows.push([
        `${sc.connections} concurrent connections × 1 MiB download`,
        `${f(sc.wallSeconds, 2)} s wall, ${f(sc.cpuSeconds, 2)} s CPU${sc.failed ? `, ${sc.failed} failed: ${sc.firstError ?? ''}` : ''}; connect→greeting median ${f(sc.setupMedianMs, 0)} ms, p99 ${f(sc.setupP99Ms, 0)} ms, max ${f(sc.setupMaxMs, 0)} ms`,
        `${f(sc.peakMiB)} (idle ${f(sc.idleMiB)})${result.scalePeaks.length > 1 ? `; worst of ${result.scalePeaks.map((p) => f(p)).join(', ')}` : ''}`,
      ]);
    }
    if (result.burst) {
      const b = result.burst;
      const peaks = result.burstPeaks;
      rows.push([
        `${b.connections} connections echoing ${f(b.bytesEach / 1024, 0)} KiB, opened at once`,
        `${f(b.wallSeconds, 2)} s wall, ${f(b.cpuSeconds, 2)} s CPU${b.failed ? `, ${b.failed} failed: ${b.firstError ?? ''}` : ''}; connect→greeting median ${f(b.setupMedianMs, 0)} ms, p99 ${f(b.setupP99Ms, 0)} ms`,
        `${f(b.peakMiB)} (idle ${f(b.idleMiB)})${peaks.length > 1 ? `; worst of ${peaks.map((p) => f(p)).join(', ')}` : ''}`,
      ]);
    }
    if (result.slow) {
      const sl = result.slow;
      rows.push([`one slow consumer (reads ${f(sl.consumerMiBps, 2)} MiB/s), upstream sending flat out`, `${f(sl.seconds / 2, 1)} s`, `${f(sl.listenerAloneMiB)} (idle ${f(sl.listenerIdleMiB)})`]);
      rows.push([
        `… plus ${sl.concurrent.connections} concurrent connections × 1 MiB`,
        `${f(sl.concurrent.wallSeconds, 2)} s for the ${sl.concurrent.connections}${sl.concurrent.failed ? `, ${sl.concurrent.failed} failed` : ''}`,
        f(sl.listenerPeakMiB),
      ]);
      rows.push(['burrow stdio with the same slow reader on its stdout', `${f(sl.seconds, 1)} s`, f(sl.stdioPeakMiB)]);
      if (sl.proxytunnelPeakMiB !== undefined) rows.push(['proxytunnel with the same slow reader on its stdout', `${f(sl.seconds, 1)} s`, f(sl.proxytunnelPeakMiB)]);
    }
    lines.push(table(['run', 'time', 'peak RSS MiB'], rows, [0, 1]));
    lines.push('');
  }

  lines.push('## Targets');
  lines.push('');
  lines.push(table(['target', 'measured', 'goal', 'met'], summary.targets.map((t) => [t.what, t.measured, t.target, mark(t.met)]), [0, 1]));
  lines.push('');
  if (tp.plain && (tp.listener || tp.stdio)) {
    lines.push('Against the plain Node client (the reference that burrow must beat):');
    lines.push('');
    const rows: string[][] = [];
    for (const id of ['listener', 'stdio'] as const) {
      for (const direction of DIRECTIONS) {
        const b = tp[id]?.[direction];
        const p = tp.plain[direction];
        if (!b || !p) continue;
        rows.push([`burrow ${id}, ${direction}`, ratio(b.mibPerSecond, p.mibPerSecond), ratio(b.cpuPerGiB, p.cpuPerGiB)]);
      }
      const l = result.latency[id];
      if (l && result.latency.plain) rows.push([`burrow ${id}, latency`, '', '', ratio(l.medianUs, result.latency.plain.medianUs)]);
    }
    if (result.startup.stdio && result.startup.plain) rows.push(['burrow stdio, start-up', '', '', '', `${signed(result.startup.stdio.medianMs - result.startup.plain.medianMs)} ms`]);
    lines.push(table(['', 'throughput ×plain', 'CPU/GiB ×plain', 'median RTT ×plain', 'start-up − plain'], rows));
    lines.push('');
  }
  const notes = [
    "The Go client (test/bench/go-client/main.go, standard library only, built by the bench with the machine's `go`) is a stand-in for pomerium-cli's TCP data path: crypto/tls with ALPN http/1.1, CONNECT with the token, `http.ReadResponse` on a `bufio.Reader`, then two `io.Copy` goroutines (32 KiB buffers). Listener and stdio modes, like burrow's.",
    'proxytunnel runs as `proxytunnel -q -E -C test/fixtures/ca.pem -p localhost:PORT -d bench.corp.test:22 -H "Authorization: Pomerium <jwt>"` in stdio mode: it verifies the proxy certificate against the test CA (no `-z`). Its listener mode (`-a`) is not used: it binds all interfaces (not just loopback) and forks a process per connection.',
    'Client processes get a clean environment (PATH, HOME and the token only): no NODE_OPTIONS or NODE_EXTRA_CA_CERTS from the shell.',
    ...result.notes,
  ];
  lines.push('Notes:');
  lines.push('');
  for (const note of notes) lines.push(`- ${note}`);
  if (result.errors.length > 0) {
    lines.push('');
    lines.push('Errors during this run:');
    lines.push('');
    for (const error of result.errors) lines.push(`- ${error}`);
  }
  lines.push('');
  return lines.join('\n');
}

const esc = (t: string): string => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

const COLORS: Record<string, string> = {
  direct: '#9e9e9e',
  tls: '#bdbdbd',
  proxytunnel: '#e8833a',
  plain: '#b39ddb',
  'go-listener': '#2e9e6a',
  'go-stdio': '#5cc08f',
  listener: '#1f6fb2',
  stdio: '#3a8fd6',
  ws: '#7ab8e8',
};

/** Horizontal bar charts of throughput (both directions) and latency; plain SVG, no dependencies. */
export function toSvg(result: BenchResult): string {
  const summary = (result.summary ??= summarize(result));
  const width = 860;
  const labelWidth = 250;
  const barMax = width - labelWidth - 170;
  const bar = 16;
  const gap = 6;
  let y = 0;
  const out: string[] = [];
  const text = (tx: number, ty: number, t: string, extra = ''): void => void out.push(`<text x="${tx}" y="${ty}" ${extra}>${esc(t)}</text>`);

  y += 26;
  const m = result.machine;
  text(12, y, `burrow benchmark${result.settings.quick ? ' (quick)' : ''} · ${result.date.slice(0, 10)}`, 'font-size="16" font-weight="bold"');
  y += 18;
  text(12, y, `${m.cpu}, ${m.cores} cores · Node ${m.node} · Linux ${m.kernel} · loopback, medians of ${result.settings.reps}`, 'font-size="11" fill="#555"');
  y += 10;

  const panel = (title: string, rows: Array<{ id: string; value: number; extra?: number }>, unit: string, lowerIsBetter: boolean): void => {
    if (rows.length === 0) return;
    y += 28;
    text(12, y, `${title}${lowerIsBetter ? ' (lower is better)' : ' (higher is better)'}`, 'font-size="13" font-weight="bold"');
    y += 8;
    const max = Math.max(...rows.map((r) => Math.max(r.value, r.extra ?? 0)).filter(Number.isFinite), 1);
    for (const r of rows) {
      y += gap;
      const w = Number.isFinite(r.value) ? Math.max(1, (r.value / max) * barMax) : 0;
      text(labelWidth - 8, y + bar - 4, label(r.id).replace(/`/g, ''), 'font-size="11" text-anchor="end"');
      if (r.extra !== undefined && Number.isFinite(r.extra)) {
        const we = Math.max(1, (r.extra / max) * barMax);
        out.push(`<rect x="${labelWidth}" y="${y + 4}" width="${we.toFixed(1)}" height="${bar - 8}" fill="${COLORS[r.id] ?? '#888'}" opacity="0.35"/>`);
      }
      out.push(`<rect x="${labelWidth}" y="${y}" width="${w.toFixed(1)}" height="${bar}" fill="${COLORS[r.id] ?? '#888'}"/>`);
      const extra = r.extra !== undefined && Number.isFinite(r.extra) ? ` (p99 ${r.extra.toFixed(0)})` : '';
      const endX = labelWidth + Math.max(w, r.extra !== undefined && Number.isFinite(r.extra) ? (r.extra / max) * barMax : 0) + 6;
      text(endX, y + bar - 4, `${Number.isFinite(r.value) ? r.value.toFixed(0) : '–'} ${unit}${extra}`, 'font-size="11"');
      y += bar;
    }
  };
  const ids = result.settings.paths;
  for (const direction of DIRECTIONS) {
    panel(
      `Throughput, ${direction} (${result.settings.sizeMiB} MiB)`,
      ids.filter((id) => summary.throughput[id]?.[direction]).map((id) => ({ id, value: summary.throughput[id]![direction]!.mibPerSecond })),
      'MiB/s',
      false,
    );
  }
  panel(
    `Latency, 64-byte round trip: median (bar) and p99 (light bar)`,
    ids.filter((id) => result.latency[id]).map((id) => ({ id, value: result.latency[id]!.medianUs, extra: result.latency[id]!.p99Us })),
    'µs',
    true,
  );
  y += 20;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    ...out,
    '</svg>',
    '',
  ].join('\n');
}

/** Paths that start a process per ssh, and the ways of one long-running burrow that must beat them all. */
const SSH_PER_PROCESS: readonly SshPathId[] = ['proxytunnel', 'go', 'proxycommand'];
const SSH_SHARED: readonly SshPathId[] = ['up', 'proxy-nc', 'multiplex'];

/** One target per shared path: its burst faster than the fastest per-process ProxyCommand of the run. */
function sshTargets(ssh: SshResult | undefined): Target[] {
  const perProcess = SSH_PER_PROCESS.filter((id) => ssh?.paths[id] !== undefined);
  const fastest = perProcess.map((id) => ssh!.paths[id]!.burstMs).reduce((a, b) => Math.min(a, b), Number.POSITIVE_INFINITY);
  return SSH_SHARED.map((id) => {
    const what = `${ssh?.count ?? 20} × ssh host true: ${SSH_PATH_LABELS[id]}`;
    const row = ssh?.paths[id];
    if (row === undefined || perProcess.length === 0) return { what, measured: 'not run', target: 'faster than every per-process ProxyCommand', met: undefined };
    return {
      what,
      measured: `${f(row.burstMs, 0)} ms (${x(row.burstMs / fastest)} the fastest ProxyCommand)`,
      target: `< 1.00× (${perProcess.join(', ')})`,
      met: row.burstMs < fastest,
    };
  });
}

/** The ssh section: each path's burst, per ssh, against the burrow ProxyCommand and proxytunnel. */
function sshTable(ssh: SshResult): string[] {
  const lines: string[] = [];
  lines.push(`## Repeated ssh (${ssh.count} sequential \`ssh host true\` to a real sshd behind the proxy)`);
  lines.push('');
  const base = ssh.paths.proxycommand?.burstMs;
  const c = ssh.paths.proxytunnel?.burstMs;
  const rows = (Object.keys(SSH_PATH_LABELS) as SshPathId[])
    .filter((id) => ssh.paths[id] !== undefined)
    .map((id) => {
      const r = ssh.paths[id]!;
      return [
        SSH_PATH_LABELS[id],
        f(r.burstMs, 0),
        f(r.perSshMs, 1),
        base === undefined ? '–' : x(r.burstMs / base),
        c === undefined ? '–' : x(r.burstMs / c),
        f(r.tunnels, 0),
      ];
    });
  lines.push(table(['path', 'burst ms', 'ms per ssh', '× burrow ProxyCommand', '× proxytunnel', 'tunnels per burst'], rows));
  lines.push('');
  lines.push(
    `Each burst: ${ssh.count} ssh processes one after another, each timed spawn to exit (ssh's own key exchange and session included), taken in turns with the other paths so that other work on the machine falls on all alike. ` +
      `Medians of ${ssh.reps} bursts per path, after one unrecorded ssh each. The multiplex path starts each burst with no master (ssh -O exit after each).`,
  );
  if (ssh.nc) lines.push(`The SOCKS client of the burrow proxy row: ${ssh.nc}.`);
  for (const [id, why] of Object.entries(ssh.skipped)) lines.push(`${id}: skipped (${why}).`);
  lines.push('');
  return lines;
}
