/**
 * `npm run bench`: burrow against direct TCP, one bare TLS hop, proxytunnel and a plain Node
 * client, through the bundled local proxy on loopback (issue 8). Interleaved and repeated;
 * medians. Writes bench/results/<name>.{json,md,svg}; see bench/README.md.
 *
 * Processes: this one is the coordinator and load generator; servers.js (forked) is the proxy,
 * the TLS terminator and the bench server; every client under test is its own process.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BURROW_BIN, stopAll, tempDir } from '../helpers/burrow.js';
import { repoRoot } from '../helpers/fixtures.js';
import { benchCacheDir, buildGoClient, killChildren, startPath, useGoClient, type BenchPath, type PathId } from './clients.js';
import { echoBurst, firstByte, latency, median, MiB, nodeStartup, percentile, scale, slowConsumer, spawnToExit, throughput, type Direction } from './measure.js';
import { loadAverage, machine, machineBusySeconds, proxytunnelVersion } from './proc.js';
import { profileBurrow } from './profile.js';
import { type BenchResult, type BenchSettings, summarize, toMarkdown, toSvg } from './report.js';
import type { ServersReady } from './protocol.js';
import { startBurrowUdp, udpRate, udpRoundTrips, type UdpRateRun } from './udp.js';
import { sshBursts, type SshPathId } from './ssh.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';

const ALL_PATHS: PathId[] = ['direct', 'tls', 'proxytunnel', 'plain', 'go-listener', 'go-stdio', 'listener', 'stdio', 'ws'];
const SECTIONS = ['throughput', 'latency', 'setup', 'startup', 'udp', 'ssh', 'scale', 'burst', 'slow'] as const;
const ALL_SSH_PATHS: SshPathId[] = ['direct', 'direct-pipe', 'proxytunnel', 'go', 'proxycommand', 'up', 'proxy-nc', 'multiplex'];
type Section = (typeof SECTIONS)[number] | 'profile';

export interface Settings extends BenchSettings {
  sections: Section[];
  out: string;
  name: string;
}

const HELP = `npm run bench -- [options]      (every option also as an environment variable)

  --quick                 smoke run, about a minute: 64 MiB, 3 reps, 200 connections, 6 s slow consumer
  --size-mib N            MiB per throughput run, each direction        BENCH_SIZE_MIB   (512; quick 64)
  --reps N                repetitions of throughput/latency (median)   BENCH_REPS       (5; quick 3)
  --rounds N              64-byte round trips per latency run          BENCH_ROUNDS     (2000)
  --setup-reps N          connection set-up / start-up repetitions     BENCH_SETUP_REPS (20; quick 10)
  --scale N               concurrent connections through one listener  BENCH_SCALE      (1000; quick 200)
  --scale-reps N          scale runs, each with a fresh listener (the worst peak counts)  BENCH_SCALE_REPS (2; quick 1)
  --burst N               echoes opened at once through one listener  BENCH_BURST      (1000)
  --burst-kib N           KiB each echo sends and gets back            BENCH_BURST_KIB  (256)
  --burst-reps N          burst runs, each with a fresh listener (the worst peak counts)  BENCH_BURST_REPS (2; quick 1)
  --slow-seconds N        duration of the slow-consumer run            BENCH_SLOW_SECONDS (10; quick 6)
  --slow-concurrent N     connections alongside the slow consumer      BENCH_SLOW_CONCURRENT (200)
  --udp-datagrams N       64-byte datagrams per UDP rate run           BENCH_UDP_DATAGRAMS (50000; quick 10000)
  --udp-window N          datagrams in flight in the UDP rate run      BENCH_UDP_WINDOW (32)
  --ssh-count N           sequential \`ssh host true\` per ssh burst      BENCH_SSH_COUNT  (20)
  --ssh-reps N            ssh bursts per path (median)                 BENCH_SSH_REPS   (3; quick 1)
  --ssh-paths a,b         subset of: ${ALL_SSH_PATHS.join(',')}   BENCH_SSH_PATHS
  --paths a,b             subset of: ${ALL_PATHS.join(',')}   BENCH_PATHS
  --only a,b              subset of: ${SECTIONS.join(',')},profile   BENCH_ONLY
  --profile               also profile burrow (--cpu-prof) during a throughput run; writes <name>-profile.md
  --out DIR               where results go                             (bench/results)
  --name NAME             file name of the results                     (latest; quick: quick)
`;

function parseSettings(argv: string[]): Settings {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      process.stdout.write(HELP);
      process.exit(0);
    }
    if (arg === '--quick' || arg === '--profile') {
      flags.set(arg.slice(2), 'true');
      continue;
    }
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m) throw new Error(`unknown argument ${arg} (try --help)`);
    const value = m[2] ?? argv[++i];
    if (value === undefined) throw new Error(`${arg} needs a value`);
    flags.set(m[1]!, value);
  }
  const env = (flag: string): string | undefined => flags.get(flag) ?? process.env[`BENCH_${flag.toUpperCase().replace(/-/g, '_')}`];
  const quick = env('quick') === 'true' || env('quick') === '1';
  const num = (flag: string, full: number, fast: number): number => {
    const raw = env(flag);
    if (raw === undefined) return quick ? fast : full;
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${flag} must be a positive number, not ${raw}`);
    return n;
  };
  const list = <T extends string>(flag: string, all: readonly T[], fallback: readonly T[]): T[] => {
    const raw = env(flag);
    if (!raw) return [...fallback];
    const items = raw.split(',').map((s) => s.trim()) as T[];
    for (const item of items) if (!all.includes(item)) throw new Error(`--${flag}: unknown ${item}; one of ${all.join(', ')}`);
    return items;
  };
  const sections = list<Section>('only', [...SECTIONS, 'profile'], SECTIONS);
  if (env('profile') === 'true' && !sections.includes('profile')) sections.push('profile');
  const known = ['quick', 'profile', 'size-mib', 'reps', 'rounds', 'setup-reps', 'scale', 'scale-reps', 'burst', 'burst-kib', 'burst-reps', 'slow-seconds', 'slow-concurrent', 'udp-datagrams', 'udp-window', 'ssh-count', 'ssh-reps', 'ssh-paths', 'paths', 'only', 'out', 'name'];
  const unknown = [...flags.keys()].find((flag) => !known.includes(flag));
  if (unknown) throw new Error(`unknown option --${unknown} (try --help)`);
  return {
    quick,
    sizeMiB: num('size-mib', 512, 64),
    reps: Math.round(num('reps', 5, 3)),
    rounds: Math.round(num('rounds', 2000, 2000)),
    setupReps: Math.round(num('setup-reps', 20, 10)),
    scaleConnections: Math.round(num('scale', 1000, 200)),
    scaleReps: Math.round(num('scale-reps', 2, 1)),
    burstConnections: Math.round(num('burst', 1000, 1000)),
    burstKiB: Math.round(num('burst-kib', 256, 256)),
    burstReps: Math.round(num('burst-reps', 2, 1)),
    slowSeconds: num('slow-seconds', 10, 6),
    slowConcurrent: Math.round(num('slow-concurrent', 200, 200)),
    udpDatagrams: Math.round(num('udp-datagrams', 50_000, 10_000)),
    udpWindow: Math.round(num('udp-window', 32, 32)),
    sshCount: Math.round(num('ssh-count', 20, 20)),
    sshReps: Math.round(num('ssh-reps', 3, 1)),
    sshPaths: list<SshPathId>('ssh-paths', ALL_SSH_PATHS, ALL_SSH_PATHS),
    paths: list<PathId>('paths', ALL_PATHS, ALL_PATHS),
    sections,
    out: env('out') ?? join(repoRoot, 'bench', 'results'),
    name: env('name') ?? (quick ? 'quick' : 'latest'),
  };
}

const log = (line: string): void => void process.stderr.write(`${line}\n`);
const fmt = (n: number, digits = 1): string => (Number.isFinite(n) ? n.toFixed(digits) : '–');

/** Forks servers.js; `sshd` (the ssh section's) gets a route there. */
function startServers(sshd?: Sshd): Promise<{ child: ChildProcess; ready: ServersReady }> {
  const env = { PATH: process.env.PATH, ...(sshd ? { BENCH_SSHD: sshd.address } : {}) };
  const child = fork(join(repoRoot, 'dist', 'test', 'bench', 'servers.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the bench servers did not start within 15 s')), 15_000);
    child.once('exit', (code) => reject(new Error(`the bench servers exited with ${code}`)));
    child.once('message', (ready) => {
      clearTimeout(timer);
      resolve({ child, ready: ready as ServersReady });
    });
  });
}

/** The proxy's CONNECT count so far (servers.js answers a 'stats' message). */
function proxyConnects(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the bench servers did not answer a stats request within 5 s')), 5000);
    const onMessage = (message: unknown): void => {
      const stats = message as { connects?: number };
      if (typeof stats?.connects !== 'number') return;
      clearTimeout(timer);
      child.off('message', onMessage);
      resolve(stats.connects);
    };
    child.on('message', onMessage);
    child.send('stats');
  });
}

async function stopServers(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (child.connected) child.send('stop');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await gone;
  clearTimeout(timer);
}

/** `items` rotated left by `by`: each repetition starts with a different path. */
const rotate = <T>(items: T[], by: number): T[] => items.map((_, i) => items[(i + by) % items.length]!);

async function main(): Promise<void> {
  const settings = parseSettings(process.argv.slice(2));
  const started = new Date();
  const t0 = Date.now();
  const pt = proxytunnelVersion();
  const notes: string[] = [];
  let paths = settings.paths;
  if (!pt && paths.includes('proxytunnel')) {
    log('bench: proxytunnel is not installed (apt-get install proxytunnel); its columns are skipped');
    notes.push('proxytunnel was not installed (`apt-get install proxytunnel`): its columns are skipped.');
    paths = paths.filter((p) => p !== 'proxytunnel');
  }
  if (paths.includes('go-listener') || paths.includes('go-stdio')) {
    const go = buildGoClient();
    if ('binary' in go) useGoClient(go.binary);
    else {
      log(`bench: the Go client is skipped: ${go.why}`);
      notes.push(`The Go client's rows are skipped: ${go.why}.`);
      paths = paths.filter((p) => p !== 'go-listener' && p !== 'go-stdio');
    }
  }
  const result: BenchResult = {
    date: started.toISOString(),
    settings: { ...settings, paths },
    machine: machine(),
    loadAverage: { start: loadAverage(), end: Number.NaN },
    machineBusyBefore: Number.NaN,
    durationSeconds: Number.NaN,
    notes,
    throughput: [],
    latency: {},
    setup: {},
    startup: {},
    scale: undefined,
    scalePeaks: [],
    burst: undefined,
    burstPeaks: [],
    slow: undefined,
    udp: undefined,
    ssh: undefined,
    errors: [],
  };
  // What the machine does without us, over one second: anything else running skews every figure.
  const busy0 = machineBusySeconds();
  await new Promise((r) => setTimeout(r, 1000));
  result.machineBusyBefore = machineBusySeconds() - busy0;
  if (result.machineBusyBefore > 0.2) {
    log(`bench: the machine was ${Math.round(result.machineBusyBefore * 100)}% busy (of one core) before starting: other work here will skew the numbers`);
    notes.push(`Before the run the machine was already ${Math.round(result.machineBusyBefore * 100)}% busy (of one core) with other work.`);
  }
  // The ssh section's sshd, started first so that the proxy gets a route to it.
  let sshd: Sshd | undefined;
  if (settings.sections.includes('ssh')) {
    try {
      // SHLVL=1: bash then skips the ~/.bashrc it reads for ssh's commands (pyenv's init there
      // took half a second per ssh on the machine this bench was written on); not what is measured.
      sshd = await startSshd({ extraConfig: ['SetEnv SHLVL=1'] });
    } catch (error) {
      result.errors.push(`ssh: sshd did not start: ${(error as Error).message}`);
      log(`bench: ssh: sshd did not start: ${(error as Error).message}`);
    }
  }
  const helper = await startServers(sshd);
  const servers = helper.ready;
  const helperPid = helper.child.pid!;
  const started_: BenchPath[] = [];
  const stopEverything = async (): Promise<void> => {
    for (const path of started_.splice(0)) await path.stop().catch(() => {});
    killChildren();
    await stopAll();
    await stopServers(helper.child);
    await sshd?.stop();
  };
  const onSignal = (): void => {
    log('bench: interrupted; stopping everything');
    void stopEverything().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    for (const id of paths) {
      try {
        started_.push(await startPath(id, servers));
      } catch (error) {
        result.errors.push(`${id}: could not start: ${(error as Error).message}`);
        log(`bench: ${id}: could not start: ${(error as Error).message}`);
      }
    }
    const running = started_;
    const has = (s: Section): boolean => settings.sections.includes(s);
    const attempt = async <T>(what: string, fn: () => Promise<T>): Promise<T | undefined> => {
      try {
        return await fn();
      } catch (error) {
        result.errors.push(`${what}: ${(error as Error).message}`);
        log(`bench: ${what} failed: ${(error as Error).message}`);
        return undefined;
      }
    };

    // Warm-up: one small transfer per path (JIT, compile cache, TLS session state).
    for (const path of running) await attempt(`warm-up ${path.id}`, () => throughput(path, 'download', 8 * MiB, helperPid, 30_000));

    if (has('throughput')) {
      const bytes = settings.sizeMiB * MiB;
      const timeoutMs = 20_000 + (settings.sizeMiB / 8) * 1000; // never slower than 8 MiB/s
      for (let rep = 0; rep < settings.reps; rep++) {
        for (const path of rotate(running, rep)) {
          const directions: Direction[] = rep % 2 === 0 ? ['upload', 'download'] : ['download', 'upload'];
          for (const direction of directions) {
            const run = await attempt(`throughput ${path.id} ${direction}`, () => throughput(path, direction, bytes, helperPid, timeoutMs));
            if (!run) continue;
            result.throughput.push(run);
            log(
              `throughput ${rep + 1}/${settings.reps} ${path.id.padEnd(11)} ${direction.padEnd(8)} ${fmt(run.mibPerSecond).padStart(7)} MiB/s  ` +
                `cpu client ${fmt(run.clientCpu, 2)} s, proxy ${fmt(run.proxyCpu, 2)} s, loadgen ${fmt(run.loadgenCpu, 2)} s`,
            );
          }
        }
      }
    }

    if (has('latency')) {
      const samples: Record<string, number[][]> = {};
      for (let rep = 0; rep < settings.reps; rep++) {
        for (const path of rotate(running, rep)) {
          const run = await attempt(`latency ${path.id}`, () => latency(path, settings.rounds));
          if (!run) continue;
          (samples[path.id] ??= []).push(run);
          log(`latency ${rep + 1}/${settings.reps} ${path.id.padEnd(11)} median ${fmt(percentile(run, 0.5), 0)} µs  p99 ${fmt(percentile(run, 0.99), 0)} µs`);
        }
      }
      for (const [id, runs] of Object.entries(samples)) {
        result.latency[id] = {
          // Median of the per-run medians and p99s: one noisy run does not decide.
          medianUs: median(runs.map((r) => percentile(r, 0.5))),
          p99Us: median(runs.map((r) => percentile(r, 0.99))),
          runs: runs.length,
          rounds: settings.rounds,
        };
      }
    }

    if (has('setup')) {
      // Listener-style paths: a new local connection to the upstream's first byte (token cached).
      const socketPaths = running.filter((p) => ['direct', 'tls', 'go-listener', 'listener', 'ws'].includes(p.id));
      const times: Record<string, number[]> = {};
      for (let rep = 0; rep < settings.setupReps; rep++) {
        for (const path of rotate(socketPaths, rep)) {
          const ms = await attempt(`setup ${path.id}`, () => firstByte(path));
          if (ms !== undefined) (times[path.id] ??= []).push(ms);
        }
      }
      for (const [id, ms] of Object.entries(times)) {
        result.setup[id] = { medianMs: median(ms), p90Ms: percentile(ms, 0.9), runs: ms.length };
        log(`setup ${id.padEnd(11)} median ${fmt(median(ms), 2)} ms  p90 ${fmt(percentile(ms, 0.9), 2)} ms`);
      }
    }

    if (has('startup')) {
      // A fresh process to the first byte: what every ssh ProxyCommand pays.
      const processPaths = running.filter((p) => ['proxytunnel', 'plain', 'go-stdio', 'stdio'].includes(p.id));
      const times: Record<string, number[]> = {};
      for (let rep = 0; rep < settings.setupReps; rep++) {
        const ms = await attempt('startup node -e 0', nodeStartup);
        if (ms !== undefined) (times.node ??= []).push(ms);
        // burrow's own loading cost, without any connection: `burrow --version` to its exit.
        const version = await attempt('startup burrow --version', () =>
          spawnToExit(process.execPath, [BURROW_BIN, '--version'], { PATH: process.env.PATH, XDG_CACHE_HOME: benchCacheDir() }),
        );
        if (version !== undefined) (times.version ??= []).push(version);
        for (const path of rotate(processPaths, rep)) {
          const first = await attempt(`startup ${path.id}`, () => firstByte(path));
          if (first !== undefined) (times[path.id] ??= []).push(first);
        }
      }
      for (const [id, ms] of Object.entries(times)) {
        result.startup[id] = { medianMs: median(ms), p90Ms: percentile(ms, 0.9), runs: ms.length };
        log(`startup ${id.padEnd(11)} median ${fmt(median(ms), 1)} ms  p90 ${fmt(percentile(ms, 0.9), 1)} ms`);
      }
    }

    if (has('udp')) {
      // burrow udp against the same UDP echo reached directly, interleaved, in this run.
      const burrow = await attempt('udp: start burrow udp', () => startBurrowUdp(servers));
      if (burrow) {
        const ports = { direct: servers.udpEchoPort, burrow: burrow.port };
        const pids = { direct: undefined, burrow: burrow.child.pid };
        const rates: Record<'direct' | 'burrow', UdpRateRun[]> = { direct: [], burrow: [] };
        const trips: Record<'direct' | 'burrow', number[][]> = { direct: [], burrow: [] };
        try {
          for (let rep = 0; rep < settings.reps; rep++) {
            for (const id of rep % 2 === 0 ? (['direct', 'burrow'] as const) : (['burrow', 'direct'] as const)) {
              const rate = await attempt(`udp rate ${id}`, () => udpRate(ports[id], settings.udpDatagrams, settings.udpWindow, { client: pids[id], proxy: helperPid }));
              if (rate) rates[id].push(rate);
              const rtt = await attempt(`udp round trips ${id}`, () => udpRoundTrips(ports[id], settings.rounds));
              if (rtt) trips[id].push(rtt);
              log(
                `udp ${rep + 1}/${settings.reps} ${id.padEnd(7)} ${fmt(rate?.perSecond ?? Number.NaN, 0).padStart(7)} datagrams/s (${rate?.lost ?? '–'} lost)  ` +
                  `round trip median ${fmt(rtt ? percentile(rtt, 0.5) : Number.NaN, 0)} µs  p99 ${fmt(rtt ? percentile(rtt, 0.99) : Number.NaN, 0)} µs`,
              );
            }
          }
        } finally {
          await burrow.stop();
        }
        const row = (id: 'direct' | 'burrow') => ({
          perSecond: median(rates[id].map((r) => r.perSecond)),
          lost: rates[id].reduce((sum, r) => sum + r.lost, 0),
          cpuUsPerDatagram: median(rates[id].map((r) => (r.clientCpu / r.datagrams) * 1e6)),
          clientUtil: median(rates[id].map((r) => r.clientCpu / r.seconds)),
          proxyUtil: median(rates[id].map((r) => r.proxyCpu / r.seconds)),
          loadgenUtil: median(rates[id].map((r) => r.loadgenCpu / r.seconds)),
          medianUs: median(trips[id].map((r) => percentile(r, 0.5))),
          p99Us: median(trips[id].map((r) => percentile(r, 0.99))),
          runs: rates[id].length,
        });
        result.udp = { datagrams: settings.udpDatagrams, window: settings.udpWindow, rounds: settings.rounds, direct: row('direct'), burrow: row('burrow') };
      }
    }

    if (has('ssh') && sshd) {
      log(`ssh: ${settings.sshCount} sequential ssh host true per burst, ${settings.sshReps} bursts per path…`);
      result.ssh = await attempt('ssh', () =>
        sshBursts(settings.sshPaths, servers, sshd, settings.sshCount, settings.sshReps, () => proxyConnects(helper.child), log),
      );
      for (const [id, why] of Object.entries(result.ssh?.skipped ?? {})) notes.push(`The ssh row ${id} is skipped: ${why}.`);
    }

    // The long-lived listeners are not needed any more; the memory runs start their own.
    for (const path of started_.splice(0)) await path.stop();

    if (has('scale') && paths.includes('listener')) {
      log(`scale: ${settings.scaleConnections} concurrent connections × 1 MiB through one fresh listener…`);
      // Peak RSS moves from run to run with GC timing: keep the worst of a few runs.
      for (let rep = 0; rep < settings.scaleReps; rep++) {
        const run = await attempt('scale', () => scale(servers, settings.scaleConnections, MiB));
        if (!run) continue;
        result.scalePeaks.push(run.peakMiB);
        if (!result.scale || run.peakMiB > result.scale.peakMiB) result.scale = run;
        log(`scale ${rep + 1}/${settings.scaleReps}: peak RSS ${fmt(run.peakMiB)} MiB in ${fmt(run.wallSeconds, 2)} s`);
      }
      if (result.scale) {
        const s = result.scale;
        log(`scale: ${s.connections - s.failed}/${s.connections} ok in ${fmt(s.wallSeconds, 2)} s, peak RSS ${fmt(s.peakMiB)} MiB (idle ${fmt(s.idleMiB)} MiB), set-up p99 ${fmt(s.setupP99Ms, 0)} ms`);
      }
    }

    if (has('burst') && paths.includes('listener')) {
      const { burstConnections: n, burstKiB: kib } = settings;
      log(`burst: ${n} echoes of ${kib} KiB opened at once through one fresh listener…`);
      for (let rep = 0; rep < settings.burstReps; rep++) {
        const run = await attempt('burst', () => echoBurst(servers, n, kib * 1024));
        if (!run) continue;
        result.burstPeaks.push(run.peakMiB);
        if (!result.burst || run.peakMiB > result.burst.peakMiB) result.burst = run;
        log(`burst ${rep + 1}/${settings.burstReps}: peak RSS ${fmt(run.peakMiB)} MiB (idle ${fmt(run.idleMiB)}) in ${fmt(run.wallSeconds, 2)} s, ${run.failed} failed${run.firstError ? `: ${run.firstError}` : ''}`);
      }
    }

    if (has('slow') && paths.includes('listener')) {
      log(`slow consumer: 1 MiB/s for ${settings.slowSeconds} s; ${settings.slowConcurrent} × 1 MiB alongside in the second half…`);
      result.slow = await attempt('slow consumer', () =>
        slowConsumer(servers, settings.slowSeconds, MiB, settings.slowConcurrent, MiB, paths.includes('proxytunnel')),
      );
      if (result.slow) {
        const s = result.slow;
        log(
          `slow consumer: listener ${fmt(s.listenerAloneMiB)} MiB alone, peak ${fmt(s.listenerPeakMiB)} MiB with ${s.concurrent.connections} more; ` +
            `stdio ${fmt(s.stdioPeakMiB)} MiB; proxytunnel ${fmt(s.proxytunnelPeakMiB ?? Number.NaN)} MiB; reader took ${fmt(s.consumerMiBps, 2)} MiB/s`,
        );
      }
    }

    if (has('profile')) {
      const dir = tempDir('burrow-bench-prof-');
      const md = await attempt('profile', () => profileBurrow(servers, Math.min(settings.sizeMiB, 512) * MiB, dir));
      if (md) {
        mkdirSync(settings.out, { recursive: true });
        writeFileSync(join(settings.out, `${settings.name}-profile.md`), md);
        log(md);
      }
    }
  } finally {
    await stopEverything();
  }

  result.loadAverage.end = loadAverage();
  result.durationSeconds = (Date.now() - t0) / 1000;
  const onlyProfile = settings.sections.length === 1 && settings.sections[0] === 'profile';
  if (!onlyProfile) {
    result.summary = summarize(result);
    const md = toMarkdown(result);
    mkdirSync(settings.out, { recursive: true });
    writeFileSync(join(settings.out, `${settings.name}.json`), `${JSON.stringify(result, jsonNumbers, 2)}\n`);
    writeFileSync(join(settings.out, `${settings.name}.md`), md);
    writeFileSync(join(settings.out, `${settings.name}.svg`), toSvg(result));
    process.stdout.write(md);
    log(`bench: wrote ${join(settings.out, settings.name)}.{json,md,svg} in ${fmt(result.durationSeconds, 0)} s`);
  }
}

/** NaN and Infinity are not JSON: write null. Round the rest to what the measurement can tell. */
function jsonNumbers(_key: string, value: unknown): unknown {
  if (typeof value !== 'number') return value;
  if (!Number.isFinite(value)) return null;
  return Number.isInteger(value) ? value : Number(value.toPrecision(5));
}

main().catch((error: unknown) => {
  log(`bench: ${(error as Error).stack ?? String(error)}`);
  killChildren();
  void stopAll().finally(() => process.exit(1));
});
