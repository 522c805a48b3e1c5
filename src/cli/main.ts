/**
 * The entry point: parse argv, run one command, turn whatever happened into one line on stderr
 * and an exit code (changesets' single top-level catch). The only place that calls process.exit.
 */
import { Command, CommanderError } from 'commander';
import { ExitCode, UsageError, toBurrowError } from '../errors.js';
import { createLogger } from '../output/log.js';
import { registerCache } from './commands/cache.js';
import { registerCompletion } from './commands/completion.js';
import { registerLogin } from './commands/login.js';
import { registerLogout } from './commands/logout.js';
import { registerSshConfig } from './commands/ssh-config.js';
import { registerStatus } from './commands/status.js';
import { registerTcp } from './commands/tcp.js';
import { registerVersion } from './commands/version.js';
import { type ProcessRuntime, processRuntime } from './runtime.js';

/** What main() runs against; tests drive main() in-process with a runtime of their own. */
export interface MainOptions {
  runtime?: ProcessRuntime;
}

/** The command tree. Help and version text go to the runtime's stdout, commander's errors to its stderr. */
export function program(runtime: ProcessRuntime): Command {
  const out = (s: string) => void runtime.stdout.write(s);
  const err = (s: string) => void runtime.stderr.write(s);
  const root = new Command('burrow')
    .description('Carry TCP (ssh, git, databases) through an identity-aware HTTPS proxy such as Pomerium.')
    .version(runtime.version, '-V, --version', 'print the version')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      writeOut: out,
      writeErr: err,
      // Commander's own errors (unknown flag, missing argument) are reported by main(), below.
      outputError: () => {},
    });
  registerTcp(root, runtime);
  registerLogin(root, runtime);
  registerLogout(root, runtime);
  registerCache(root, runtime);
  registerStatus(root, runtime);
  registerSshConfig(root, runtime);
  registerVersion(root, runtime);
  registerCompletion(root, runtime);
  root.addHelpText(
    'after',
    `
Examples:
  $ burrow tcp git.corp.example.com:22 --listen :2202
  $ ssh -o ProxyCommand='burrow tcp --listen - %h:%p' git@git.corp.example.com
  $ burrow ssh-config git.corp.example.com --user git >> ~/.ssh/config
  $ burrow login https://git.corp.example.com
  $ burrow status

Run "burrow tcp --help" for every option.`,
  );
  return root;
}

/** The usage error, with a hint naming the help of the command typed, if `root` has it. */
function usageFromCommander(error: CommanderError, argv: string[], root: Command | undefined): UsageError {
  const message = error.message.replace(/^error: /, '');
  const sub = argv.slice(2).find((a) => !a.startsWith('-'));
  const command = sub === undefined ? undefined : root?.commands.find((c) => c.name() === sub || c.aliases().includes(sub));
  const help = command && command.name() !== 'help' ? `burrow ${command.name()} --help` : 'burrow --help';
  return new UsageError(message, { hint: `run "${help}" for usage`, cause: error });
}

/** Parses `argv`, runs the command, and returns the exit code (never exits the process itself). */
export async function main(argv: string[] = process.argv, options: MainOptions = {}): Promise<number> {
  const runtime = options.runtime ?? processRuntime();
  // Failures that escape a command (bad flags among them) follow --json too, parsed or not.
  const end = argv.indexOf('--');
  const json = (end === -1 ? argv : argv.slice(0, end)).includes('--json');
  const logger = createLogger({ level: 'error', json, stream: runtime.stderr, env: runtime.env });
  let root: Command | undefined;
  try {
    root = program(runtime);
    await root.parseAsync(argv);
    return runtime.exitCode();
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version "fail" with these codes; they printed what was asked.
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') {
        return ExitCode.ok;
      }
      if (error.code === 'commander.executeSubCommandAsync') return error.exitCode;
      logger.failure(usageFromCommander(error, argv, root));
      return ExitCode.usage;
    }
    const failure = toBurrowError(error);
    logger.failure(failure);
    if (failure.code === 'BURROW_INTERNAL' && runtime.env.BURROW_DEBUG) runtime.stderr.write(`${String((error as Error).stack)}\n`);
    return failure.exitCode;
  }
}

/** Runs main and exits: stdio mode keeps stdin open, so the process must be told to go. */
export async function run(): Promise<void> {
  const code = await main();
  process.exit(code);
}
