/**
 * Where burrow's time goes: runs a listener and a stdio process under `node --cpu-prof` while
 * they move N bytes each way, and ranks functions by self time (from the .cpuprofile files).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { burrowStdioArgs, processConn, socketConn, spawnBurrowWithNodeArgs, whenConnected, type BenchPath } from './clients.js';
import { concurrentDownloads, MiB, throughput, type Direction } from './measure.js';
import { BENCH_DEST, WS_PATH, type ServersReady } from './protocol.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time by function, in ms, and the total (idle excluded). */
export function selfTimes(profile: CpuProfile): { rows: Array<{ name: string; where: string; ms: number }>; busyMs: number; idleMs: number } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const totals = new Map<string, { name: string; where: string; ms: number }>();
  let busyMs = 0;
  let idleMs = 0;
  profile.samples.forEach((id, i) => {
    const ms = (profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0) / 1000;
    const frame = byId.get(id)?.callFrame;
    const name = frame?.functionName || '(anonymous)';
    if (name === '(idle)') {
      idleMs += ms;
      return;
    }
    busyMs += ms;
    const file = frame?.url ? frame.url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/').replace(/^node:/, 'node:') : '';
    const where = file ? `${file}:${(frame?.lineNumber ?? 0) + 1}` : '';
    const key = `${name} ${where}`;
    const entry = totals.get(key) ?? { name, where, ms: 0 };
    entry.ms += ms;
    totals.set(key, entry);
  });
  return { rows: [...totals.values()].sort((a, b) => b.ms - a.ms), busyMs, idleMs };
}

function newestProfile(dir: string, before: Set<string>): CpuProfile {
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile') && !before.has(f));
  if (!file) throw new Error(`no .cpuprofile written in ${dir}`);
  before.add(file);
  return JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
}

function render(title: string, profile: CpuProfile, top = 15): string {
  const { rows, busyMs, idleMs } = selfTimes(profile);
  const lines = [`### ${title}`, '', `busy ${busyMs.toFixed(0)} ms, idle ${idleMs.toFixed(0)} ms (sampled)`, '', '| self ms | % of busy | function | where |', '| --: | --: | --- | --- |'];
  for (const r of rows.slice(0, top)) lines.push(`| ${r.ms.toFixed(0)} | ${((r.ms / busyMs) * 100).toFixed(1)}% | ${r.name.replace(/\|/g, '\\|')} | ${r.where} |`);
  return `${lines.join('\n')}\n`;
}

/** A burrow listener under --cpu-prof; resolves with it and its port once it printed its address. */
async function profiledListener(servers: ServersReady, nodeArgs: string[], websocket = false): Promise<{ child: ReturnType<typeof spawnBurrowWithNodeArgs>; port: number }> {
  const dest = websocket ? [`${servers.proxyUrl.replace(/^https:/, 'wss:')}${WS_PATH}`] : [BENCH_DEST, '--pomerium-url', servers.proxyUrl];
  const child = spawnBurrowWithNodeArgs(nodeArgs, ['tcp', ...dest, '--alternate-ca-path', servers.caPath], servers);
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('profiled listener printed no address')), 15_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) {
        clearTimeout(timer);
        resolve(Number(line.slice(line.lastIndexOf(':') + 1)));
      }
    });
  });
  return { child, port };
}

/** SIGTERM (burrow exits 0 on it, and --cpu-prof writes the profile on exit), bounded. */
async function stopProfiled(child: ReturnType<typeof spawnBurrowWithNodeArgs>): Promise<void> {
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/**
 * Profiles a burrow listener (upload + download), one stdio process per direction, and a
 * listener opening `connections` tunnels at once (connection set-up cost); returns markdown.
 */
export async function profileBurrow(servers: ServersReady, bytes: number, dir: string, connections = 200): Promise<string> {
  const nodeArgs = ['--cpu-prof', '--cpu-prof-dir', dir];
  const seen = new Set<string>();
  const sections: string[] = [`## CPU profile of burrow (node --cpu-prof, ${bytes / MiB} MiB each way)`, ''];

  // Listeners (CONNECT, then WebSocket): the same throughput runs as the bench.
  for (const websocket of [false, true]) {
    const { child, port } = await profiledListener(servers, nodeArgs, websocket);
    const listener: BenchPath = {
      id: websocket ? 'ws' : 'listener',
      label: 'burrow listener (profiled)',
      pid: child.pid,
      open: async () => socketConn(await whenConnected(netConnect({ host: '127.0.0.1', port }), 'connect'), child.pid),
      stop: async () => {},
    };
    const runs: string[] = [];
    for (const direction of ['upload', 'download'] as Direction[]) {
      const run = await throughput(listener, direction, bytes, 0, 120_000);
      runs.push(`${direction} ${run.mibPerSecond.toFixed(0)} MiB/s`);
    }
    await stopProfiled(child);
    sections.push(render(`${websocket ? 'WebSocket listener' : 'Listener'} (${runs.join(', ')} while profiled)`, newestProfile(dir, seen)));
  }

  // Connection set-up: many new tunnels at once, 64 KiB each.
  const many = await profiledListener(servers, nodeArgs);
  const downloads = await concurrentDownloads(many.port, connections, 64 * 1024, 120_000);
  await stopProfiled(many.child);
  sections.push(
    render(
      `Listener, ${connections} new tunnels at once, 64 KiB each (${downloads.wallSeconds.toFixed(2)} s; connect→greeting median ${downloads.setupMedianMs.toFixed(0)} ms)`,
      newestProfile(dir, seen),
    ),
  );

  for (const direction of ['upload', 'download'] as Direction[]) {
    const stdio: BenchPath = {
      id: 'stdio',
      label: 'burrow stdio (profiled)',
      pid: undefined,
      open: async () => {
        const proc = spawnBurrowWithNodeArgs(nodeArgs, burrowStdioArgs(servers), servers);
        const conn = processConn(proc);
        await conn.counter.until(1, 15_000, 'the profiled stdio tunnel');
        return conn;
      },
      stop: async () => {},
    };
    const run = await throughput(stdio, direction, bytes, 0, 120_000);
    sections.push(render(`stdio, ${direction} (${run.mibPerSecond.toFixed(0)} MiB/s while profiled)`, newestProfile(dir, seen)));
  }
  return sections.join('\n');
}
