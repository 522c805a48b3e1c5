/**
 * The process, as the commands see it: environment, standard streams, signals. Built once in
 * main.ts from the real process and passed down (loggers write to its stderr and read its env):
 * nothing below cli/ touches `process` for these.
 */
import { closeSync, openSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import type { Readable, Writable } from 'node:stream';

export interface Runtime {
  readonly env: NodeJS.ProcessEnv;
  readonly stdin: Readable;
  readonly stdout: Writable;
  /** Where every human line goes (and JSON events); its isTTY decides colour and spinners. */
  readonly stderr: Writable & { readonly isTTY?: boolean | undefined };
  readonly version: string;
  /**
   * A person may be at a terminal: this process can open /dev/tty (its controlling terminal),
   * where pasted sign-in addresses are read. False under cron, CI, `setsid`, an IDE's
   * background job.
   */
  readonly interactiveTerminal: boolean;
  setExitCode(code: number): void;
  /** Calls `handler` on SIGINT/SIGTERM/SIGHUP; returns a function that stops listening. */
  onSignal(handler: (signal: NodeJS.Signals) => void): () => void;
  /** How to run this burrow again from anywhere (absolute paths): for generated ProxyCommands. */
  selfCommand(): string[];
  /** Rewrites the process title so a token given as an argument is not in `ps` output. */
  hideArguments(): void;
  /**
   * Turns V8's optimizing compiler (TurboFan) off for the rest of the run, for a process that
   * carries one tunnel whose JavaScript only hands chunks between native sockets: optimized code
   * buys that no CPU that can be measured, and each of the dozen or so compilations in its first
   * seconds delays a round trip by milliseconds (docs/performance.md, "The stdio round trip's
   * p99"). Back on at exit, before the loader writes the code cache: V8 accepts a cache only
   * under the flags it was made with.
   */
  forgoOptimizingCompiler(): void;
}

/** package.json's version, put in by the bundler (scripts/bundle.mjs); undefined when unbundled. */
declare const __BURROW_VERSION__: string | undefined;

/**
 * burrow's version: fixed in the bundle at build time, so it is right whatever the package is
 * named or wherever it is installed. Unbundled (the tsc output), from the nearest package.json
 * above this file that declares the `burrow` command.
 */
function readVersion(): string {
  if (typeof __BURROW_VERSION__ === 'string') return __BURROW_VERSION__;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { bin?: Record<string, string>; version?: string };
      if (pkg.bin?.burrow && pkg.version) return pkg.version;
    } catch {
      // No package.json here: keep walking up.
    }
    dir = dirname(dir);
  }
  return '0.0.0';
}

/**
 * Whether a controlling terminal can be opened for reading (asked only when a sign-in needs it).
 * Windows has no /dev/tty: there a terminal on stdin or stderr counts.
 */
function hasTerminal(): boolean {
  if (process.platform === 'win32') return process.stderr.isTTY === true || process.stdin.isTTY === true;
  try {
    closeSync(openSync('/dev/tty', 'r'));
    return true;
  } catch {
    return false;
  }
}

export interface ProcessRuntime extends Runtime {
  exitCode(): number;
}

export function processRuntime(): ProcessRuntime {
  let exitCode = 0;
  let terminal: boolean | undefined;
  let compilerOff = false;
  const runtime: ProcessRuntime = {
    env: process.env,
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    version: readVersion(),
    get interactiveTerminal() {
      return (terminal ??= hasTerminal());
    },
    setExitCode: (code) => {
      exitCode = code;
    },
    exitCode: () => exitCode,
    onSignal(handler) {
      const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
      for (const signal of signals) process.on(signal, handler);
      return () => {
        for (const signal of signals) process.off(signal, handler);
      };
    },
    selfCommand() {
      const script = process.argv[1] ? realpathSync(process.argv[1]) : undefined;
      // A .js entry point needs node; a packaged single binary runs by itself.
      if (script === undefined || script === process.execPath) return [process.execPath];
      return script.endsWith('.js') ? [process.execPath, script] : [script];
    },
    hideArguments() {
      process.title = 'burrow';
    },
    forgoOptimizingCompiler() {
      if (compilerOff) return;
      compilerOff = true;
      setFlagsFromString('--no-turbofan');
      // Before the loader's own exit listener (src/cli/loader.ts), which was added first.
      process.prependOnceListener('exit', () => setFlagsFromString('--turbofan'));
    },
  };
  return runtime;
}
