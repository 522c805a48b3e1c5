/**
 * Real bash, zsh and fish asked to complete a command line with a completion script, for the
 * `burrow completion` tests. Each returns the candidates the shell's own completion machinery
 * produced:
 *
 * - bash: the script is sourced, `complete -p` must name its function, and the function runs with
 *   COMP_WORDS/COMP_CWORD/COMP_LINE/COMP_POINT set as readline sets them (words as bash splits
 *   them with the default COMP_WORDBREAKS, which the caller passes); COMPREPLY is printed.
 * - zsh: an interactive `zsh -f -i` on a pseudo-terminal (the zsh/zpty module) loads compinit and
 *   the script, receives the line and a TAB bound to complete-word, and a `compadd` wrapper prints
 *   every match the completion system adds (the technique of Valodim's zsh-capture-completion).
 * - fish: `complete -C <line>` after sourcing the script, without the user's config (`-N`).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { repoRoot } from './fixtures.js';
import { shQuote } from './sshd.js';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type ShellName = (typeof SHELLS)[number];

function onPath(name: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => dir !== '' && existsSync(join(dir, name)));
}

/**
 * Throws unless `shell` is installed: a clear failure with the package to install, in CI (where
 * .ci/run installs zsh and fish) and locally alike, never a skip.
 */
export function requireShell(shell: ShellName): void {
  if (onPath(shell)) return;
  const where = process.env.CI === 'true' ? 'CI: .ci/run must install it' : 'install it';
  throw new Error(`${shell} not found; the completion tests run the real shell (${where}: apt-get install ${shell})`);
}

const TIMEOUT_MS = 20_000;

function run(command: string, args: string[], cwd: string): string {
  const result = spawnSync(command, args, {
    cwd,
    encoding: 'utf8',
    timeout: TIMEOUT_MS,
    // An interactive shell ignores SIGTERM; a synchronous spawn that outlived its timeout would
    // block this process's timers too.
    killSignal: 'SIGKILL',
    env: { PATH: process.env.PATH, HOME: cwd, TERM: 'xterm', LANG: 'C.UTF-8' },
  });
  if (result.error) throw result.error;
  if (result.status !== 0) throw new Error(`${command} exited with ${result.status}: ${result.stderr}`);
  return result.stdout;
}

const lines = (out: string) => out.split('\n').filter((l) => l !== '');

/**
 * bash: sources `scriptPath`, checks `complete -p burrow`, runs the function for `words` (the
 * last one is the word being completed) and returns COMPREPLY.
 */
export function bashComplete(scriptPath: string, words: string[], cwd: string): string[] {
  const line = words.join(' ');
  const driver = [
    `source ${shQuote(scriptPath)}`,
    // The registration a user's shell would use, exactly as `complete -p` reports it.
    `spec=$(complete -p burrow) || exit 3`,
    `fn=$(printf '%s\\n' "$spec" | sed -n 's/.*-F \\([^ ]*\\) .*/\\1/p')`,
    `COMP_WORDS=(${words.map(shQuote).join(' ')})`,
    `COMP_CWORD=${words.length - 1}`,
    `COMP_LINE=${shQuote(line)}`,
    `COMP_POINT=${line.length}`,
    `COMPREPLY=()`,
    `"$fn" burrow ${shQuote(words.at(-1) ?? '')} ${shQuote(words.at(-2) ?? '')}`,
    `printf '%s\\n' "\${COMPREPLY[@]}"`,
  ].join('\n');
  return lines(run('bash', ['--norc', '--noprofile', '-c', driver], cwd));
}

/** The zsh side of {@link zshComplete}. */
const ZSH_CAPTURE = join(repoRoot, 'test', 'helpers', 'zsh-capture.zsh');

/** zsh: types `line` and TAB into an interactive zsh that loaded `scriptPath`; the matches offered. */
export function zshComplete(scriptPath: string, line: string, cwd: string): string[] {
  return lines(run('zsh', ['-f', ZSH_CAPTURE, cwd, scriptPath, line], cwd));
}

/** fish: `complete -C line` after sourcing `scriptPath`; the candidates, without descriptions. */
export function fishComplete(scriptPath: string, line: string, cwd: string): string[] {
  const out = run('fish', ['-N', '-c', `source ${shQuote(scriptPath)}; complete -C ${shQuote(line)}`], cwd);
  return lines(out).map((l) => l.split('\t')[0]!);
}
