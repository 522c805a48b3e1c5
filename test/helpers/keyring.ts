/**
 * Runs a node script against a real Secret Service: a private D-Bus session (dbus-run-session) with
 * its own gnome-keyring-daemon, HOME and XDG directories in a temporary directory, so a test never
 * sees or touches the keyring of the user running it. Every process started here is in one process
 * group that is killed when the run ends or times out (gnome-keyring-daemon daemonizes, but stays in
 * the group).
 *
 * Needs the Debian packages dbus (dbus-run-session, dbus-send), gnome-keyring and libsecret-tools
 * (secret-tool), which .ci/run installs. Without them the tests fail and say what to install: a
 * keychain test that skips would let a broken keychain store land.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/**
 * - `unlocked`: gnome-keyring with a login keyring unlocked by password (created on first use).
 * - `locked`: gnome-keyring started without the password: an existing login keyring stays locked,
 *   a new home has no default keyring at all.
 * - `no-secret-service`: a D-Bus session in which nothing provides org.freedesktop.secrets.
 * - `no-dbus`: no session bus at all (a server over ssh, a container, CI).
 */
export type KeyringSession = 'unlocked' | 'locked' | 'no-secret-service' | 'no-dbus';

export interface KeyringRunOptions {
  session?: KeyringSession;
  /** A directory from keyringHome(), to keep a keyring across runs; default a fresh one, removed after. */
  home?: string;
  /** Added to the script's environment. */
  env?: NodeJS.ProcessEnv;
  /** Everything is killed after this long; default 20 s. */
  timeoutMs?: number;
}

export interface KeyringRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Wall-clock milliseconds from spawn to exit. */
  ms: number;
}

/** The login keyring's password in these throwaway homes. */
const PASSWORD = 'burrow-test-keyring';

const TOOLS: Array<[tool: string, debianPackage: string]> = [
  ['dbus-run-session', 'dbus'],
  ['dbus-send', 'dbus'],
  ['gnome-keyring-daemon', 'gnome-keyring'],
  ['secret-tool', 'libsecret-tools'],
];

function onPath(tool: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Throws, naming the Debian packages to install, when a tool the keychain tests drive is missing. */
export function requireKeyringTools(): void {
  const missing = TOOLS.filter(([tool]) => !onPath(tool));
  if (missing.length === 0) return;
  const packages = [...new Set(missing.map(([, pkg]) => pkg))].join(' ');
  throw new Error(
    `the keychain tests need ${missing.map(([tool]) => tool).join(', ')}: ` +
      `install them with "apt-get install ${packages}" (.ci/run does this in CI)`,
  );
}

/** A fresh directory to serve as HOME (and XDG dirs) for one or more runs; remove it with rmSync. */
export function keyringHome(): string {
  const home = mkdtempSync(join(tmpdir(), 'burrow-keyring-'));
  mkdirSync(join(home, 'run'), { mode: 0o700 });
  return home;
}

/** A D-Bus session config with no service directories, so nothing can be activated on it. */
function bareSessionConfig(home: string): string {
  const path = join(home, 'session-without-services.conf');
  writeFileSync(
    path,
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir=${join(home, 'run')}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`,
  );
  return path;
}

function command(session: KeyringSession, home: string, node: string[]): [string, string[]] {
  // The daemon forks into the background once the secrets component is on the bus, so the script
  // starts against a ready keyring; D-Bus activation would start a second, locked one otherwise.
  const start = {
    unlocked: 'printf %s "$BURROW_TEST_KEYRING_PASSWORD" | gnome-keyring-daemon --unlock --components=secrets >/dev/null',
    locked: 'gnome-keyring-daemon --start --components=secrets >/dev/null </dev/null',
  };
  switch (session) {
    case 'unlocked':
    case 'locked':
      return ['dbus-run-session', ['--', 'sh', '-c', `${start[session]} || exit 97; exec "$@"`, 'sh', ...node]];
    case 'no-secret-service':
      return ['dbus-run-session', [`--config-file=${bareSessionConfig(home)}`, '--', ...node]];
    case 'no-dbus':
      return [node[0]!, node.slice(1)];
  }
}

/** Runs `node <script> <args…>` in the given kind of session; resolves when everything has ended. */
export async function runInKeyring(script: string, args: string[], options: KeyringRunOptions = {}): Promise<KeyringRun> {
  const session = options.session ?? 'unlocked';
  if (session !== 'no-dbus') requireKeyringTools();
  const home = options.home ?? keyringHome();
  try {
    // Built from scratch, not from process.env: a DBUS_SESSION_BUS_ADDRESS, DISPLAY or
    // XDG_RUNTIME_DIR inherited from the developer's desktop would reach their real keyring.
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      LANG: 'C.UTF-8',
      HOME: home,
      XDG_RUNTIME_DIR: join(home, 'run'),
      XDG_DATA_HOME: join(home, 'data'),
      XDG_CONFIG_HOME: join(home, 'config'),
      XDG_CACHE_HOME: join(home, 'cache'),
      BURROW_TEST_KEYRING_PASSWORD: PASSWORD,
      NO_COLOR: '1',
      ...options.env,
    };
    const [file, argv] = command(session, home, [process.execPath, script, ...args]);
    return await run(file, argv, env, options.timeoutMs ?? 20_000);
  } finally {
    if (options.home === undefined) rmSync(home, { recursive: true, force: true });
  }
}

function run(file: string, argv: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<KeyringRun> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    // detached: its own process group, so one kill reaches dbus-daemon and gnome-keyring-daemon too.
    const child = spawn(file, argv, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const pgid = child.pid;
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const killGroup = () => {
      if (pgid === undefined) return;
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        // ESRCH: everything has already exited.
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      killGroup();
      reject(error);
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>((done) =>
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        done({ code, signal, ms: Date.now() - started });
      }),
    );
    const closed = new Promise<void>((done) => child.once('close', () => done()));
    void exited.then(async (exit) => {
      // The keyring daemon leaves on its own once its bus is gone; give it a moment to save and go,
      // then make sure nothing of this run is left (which also ends any pipe it still holds).
      await groupGone(pgid, 2000);
      killGroup();
      await closed;
      resolve({ ...exit, stdout, stderr, timedOut });
    });
  });
}

async function groupGone(pgid: number | undefined, withinMs: number): Promise<void> {
  if (pgid === undefined) return;
  const until = Date.now() + withinMs;
  while (Date.now() < until && groupAlive(pgid)) await new Promise((r) => setTimeout(r, 25));
}

/**
 * Whether a process of the group still runs. Zombies do not count: the daemons were reparented to
 * PID 1, which may reap them only later (a container's init does so about once a second).
 */
function groupAlive(pgid: number): boolean {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch {
      return false;
    }
  }
  for (const pid of pids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses, so split after the last ")".
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(pgrp) === pgid && state !== 'Z') return true;
  }
  return false;
}

/** The one JSON line a keychain-probe run printed. */
export function probeResult<T = Record<string, unknown>>(run: KeyringRun): T {
  const line = run.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as T;
  } catch {
    throw new Error(
      `keychain probe printed no JSON (exit ${run.code ?? run.signal}${run.timedOut ? ', timed out' : ''})\n` +
        `stdout: ${run.stdout}\nstderr: ${run.stderr}`,
    );
  }
}
