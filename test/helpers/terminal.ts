/**
 * Runs a command on a real pseudo-terminal: util-linux `script` gives it a pty as stdin, stdout
 * and stderr (and /dev/tty), and copies the terminal's output to our pipe byte for byte, escape
 * sequences and carriage returns included. For spinners, colours and typed input.
 */
import { spawn } from 'node:child_process';
import { shQuote } from './sshd.js';

export interface Terminal {
  /** Everything the terminal showed so far, raw. */
  screen(): string;
  /** Types into the terminal. */
  write(text: string): void;
  /** Resolves with the exit code of `script` (that of the command). */
  exited: Promise<number>;
  /** SIGTERM, then SIGKILL after 5 s. */
  stop(): Promise<void>;
}

const running = new Set<Terminal>();

export function runInTerminal(argv: string[], env: NodeJS.ProcessEnv): Terminal {
  const command = argv.map(shQuote).join(' ');
  // -q: no "Script started" banner; -f: flush at once; -e: the command's exit code; -c: run it.
  const child = spawn('script', ['-qfec', command, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let screen = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (screen += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (screen += d));
  child.stdin.on('error', () => {});
  const exited = new Promise<number>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1))));
  const terminal: Terminal = {
    screen: () => screen,
    write: (text) => child.stdin.write(text),
    exited,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
  running.add(terminal);
  void exited.then(() => running.delete(terminal));
  return terminal;
}

/** Stops every terminal started here (for `after` hooks). */
export async function stopAllTerminals(): Promise<void> {
  await Promise.all([...running].map((t) => t.stop()));
}
