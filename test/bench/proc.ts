/** What the benchmark reads from the operating system: CPU time and memory of other processes, the machine. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';

/** Clock ticks per second of /proc/<pid>/stat times (`getconf CLK_TCK`, 100 nearly everywhere). */
export const CLK_TCK = ((): number => {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

/** User and system CPU seconds of a process (children it has reaped included); NaN when it is gone. */
export function cpuTimes(pid: number | undefined): { user: number; system: number } {
  const none = { user: Number.NaN, system: Number.NaN };
  if (pid === undefined) return none;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may itself hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    // utime, stime, cutime, cstime are fields 14-17 of proc(5), i.e. 11-14 after the name.
    return { user: ((fields[11] ?? 0) + (fields[13] ?? 0)) / CLK_TCK, system: ((fields[12] ?? 0) + (fields[14] ?? 0)) / CLK_TCK };
  } catch {
    return none;
  }
}

/** User + system CPU seconds of a process; NaN when it is gone. */
export function cpuSeconds(pid: number | undefined): number {
  const { user, system } = cpuTimes(pid);
  return user + system;
}

/**
 * Busy CPU seconds of the whole machine so far (all cores: user, nice, system, irq, softirq,
 * steal), from /proc/stat. Minus what our processes used, it is the rest of the machine: the
 * kernel's loopback and softirq work not charged to a process, and any other load.
 */
export function machineBusySeconds(): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
    const [, ...values] = line.trim().split(/\s+/);
    const n = values.map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already inside user)
    const busy = (n[0] ?? 0) + (n[1] ?? 0) + (n[2] ?? 0) + (n[5] ?? 0) + (n[6] ?? 0) + (n[7] ?? 0);
    return busy / CLK_TCK;
  } catch {
    return Number.NaN;
  }
}

/** Resident memory of a process in MiB: `VmRSS` now and `VmHWM` (its peak so far). */
export function memory(pid: number | undefined): { rssMiB: number; peakMiB: number } {
  const none = { rssMiB: Number.NaN, peakMiB: Number.NaN };
  if (pid === undefined) return none;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
    return { rssMiB: kib('VmRSS') / 1024, peakMiB: kib('VmHWM') / 1024 };
  } catch {
    return none;
  }
}

/** The 1-minute load average: other work on the machine skews every figure. */
export function loadAverage(): number {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {
    return Number.NaN;
  }
}

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  kernel: string;
  os: string;
  proxytunnel: string | undefined;
  /** `go1.19.8`: the compiler of the Go client, when installed. */
  go?: string | undefined;
  burrowCommit: string;
}

function run(file: string, args: string[]): string | undefined {
  try {
    return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (error) {
    // proxytunnel -V exits 0 but older builds exit 1 after printing the version.
    const out = (error as { stdout?: string }).stdout?.trim();
    return out || undefined;
  }
}

export function machine(): Machine {
  let cpu = cpus()[0]?.model ?? 'unknown';
  try {
    cpu = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpu;
  } catch {
    // not Linux: os.cpus() is good enough
  }
  let os = 'unknown';
  try {
    os = /^PRETTY_NAME="?(.*?)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? os;
  } catch {
    // no os-release
  }
  const commit = run('git', ['rev-parse', '--short', 'HEAD']) ?? 'unknown';
  const dirty = run('git', ['status', '--porcelain', '--', 'src', 'bin']);
  return {
    cpu,
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    kernel: run('uname', ['-r']) ?? 'unknown',
    os,
    proxytunnel: proxytunnelVersion(),
    go: /go\d+(\.\d+)*/.exec(run('go', ['version']) ?? '')?.[0],
    burrowCommit: dirty ? `${commit} + uncommitted changes in src/ or bin/` : commit,
  };
}

/** `proxytunnel 1.10.20210128` when it is installed, else undefined. */
export function proxytunnelVersion(): string | undefined {
  const out = run('proxytunnel', ['-V']);
  return out ? /^proxytunnel\s+\S+/m.exec(out)?.[0] ?? out.split('\n')[0] : undefined;
}
