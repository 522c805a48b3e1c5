/**
 * `burrow completion <bash|zsh|fish>`: prints a completion script for the shell, generated from
 * this program's own command definitions (src/cli/completion/), so it never drifts from the flags.
 */
import { Argument, type Command } from 'commander';
import type { Runtime } from '../runtime.js';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

export function registerCompletion(program: Command, runtime: Runtime): void {
  program
    .command('completion')
    .description('print a shell completion script (bash, zsh or fish); see docs/guide.md for where to put it')
    .addArgument(new Argument('<shell>', 'the shell to complete for').choices(SHELLS))
    .addHelpText(
      'after',
      `
Examples:
  $ burrow completion bash > ~/.local/share/bash-completion/completions/burrow
  $ burrow completion zsh > "\${fpath[1]}/_burrow"
  $ burrow completion fish > ~/.config/fish/completions/burrow.fish
`,
    )
    .action(async (shell: Shell) => {
      runtime.stdout.write(await completionScript(program, shell));
    });
}

/** The completion script of `program` (the root command) for `shell`. */
export async function completionScript(program: Command, shell: Shell): Promise<string> {
  const { describeCommand } = await import('../completion/spec.js');
  const spec = describeCommand(program);
  if (shell === 'bash') return (await import('../completion/bash.js')).bashScript(spec);
  if (shell === 'zsh') return (await import('../completion/zsh.js')).zshScript(spec);
  return (await import('../completion/fish.js')).fishScript(spec);
}
