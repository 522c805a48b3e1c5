/**
 * The entry point: parse argv, run one command, turn whatever happened into one line on stderr
 * and an exit code (changesets' single top-level catch). The only place that calls process.exit.
 */
import { Command, CommanderError } from 'commander';
import { ExitCode, OutputError, UsageError, toBurrowError } from '../errors.js';
import { createLogger, type Logger } from '../output/log.js';
import { text } from '../output/messages.js';
import { COMMANDS, type CommandName, TUNNEL_COMMANDS } from './command-table.js';
import { registerConfig } from './commands/config.js';
import { applyDefaults } from './config.js';
import { registerCache } from './commands/cache.js';
import { registerCompletion } from './commands/completion.js';
import { registerDoctor } from './commands/doctor.js';
import { registerK8s } from './commands/k8s.js';
import { registerLogin } from './commands/login.js';
import { registerLogout } from './commands/logout.js';
import { registerProxy } from './commands/proxy.js';
import { registerRoutes } from './commands/routes.js';
import { registerSshConfig } from './commands/ssh-config.js';
import { registerStatus } from './commands/status.js';
import { registerTcp } from './commands/tcp.js';
import { registerToken } from './commands/token.js';
import { registerUdp } from './commands/udp.js';
import { registerUp } from './commands/up.js';
import { registerVersion } from './commands/version.js';
import { type ProcessRuntime, processRuntime } from './runtime.js';

/** What main() runs against; tests drive main() in-process with a runtime of their own. */
export interface MainOptions {
  runtime?: ProcessRuntime;
  /** Told the path of the command about to run (`tcp`, `cache clear`), once its flags parsed. */
  onAction?: (command: string) => void;
}

/** `--json` anywhere before `--`: failures that escape a command follow it, parsed or not. */
function wantsJson(argv: string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json');
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
  registerUdp(root, runtime);
  registerProxy(root, runtime);
  registerUp(root, runtime);
  registerLogin(root, runtime);
  registerLogout(root, runtime);
  registerCache(root, runtime);
  registerStatus(root, runtime);
  registerSshConfig(root, runtime);
  registerToken(root, runtime);
  registerRoutes(root, runtime);
  registerDoctor(root, runtime);
  registerK8s(root, runtime);
  registerVersion(root, runtime);
  registerCompletion(root, runtime);
  registerConfig(root, runtime);
  // The one place flag values left out on the command line come from the environment and the config file.
  root.hook('preAction', async (_root, action) => {
    const name = actionPath(action).join(' ');
    if (Object.hasOwn(COMMANDS, name)) await applyDefaults(action, name as CommandName, runtime.env);
  });
  root.addHelpText(
    'after',
    `
Examples:
  $ burrow tcp git.corp.example.com:22 --listen :2202
  $ ssh -o ProxyCommand='burrow tcp --listen - %h:%p' git@git.corp.example.com
  $ burrow up
  $ burrow ssh-config git.corp.example.com --user git >> ~/.ssh/config
  $ burrow login https://git.corp.example.com
  $ burrow routes https://proxy.corp.example.com
  $ burrow status

Run "burrow tcp --help" for every option.`,
  );
  return root;
}

/** The subcommands typed in `argv` (`['cache', 'clear']`), as far as `root` has them. */
function commandPath(argv: string[], root: Command | undefined): string[] {
  const path: string[] = [];
  let current = root;
  for (const arg of argv.slice(2)) {
    if (arg === '--') break;
    if (arg.startsWith('-') || current === undefined) continue;
    const next: Command | undefined = current.commands.find((c) => c.name() === arg || c.aliases().includes(arg));
    if (next === undefined || next.name() === 'help') break;
    path.push(next.name());
    current = next;
  }
  return path;
}

/** `a, b, c` → `a, b or c`. */
function choiceList(list: string): string {
  const items = list.split(/,\s*/).filter(Boolean);
  return items.length < 2 ? list : `${items.slice(0, -1).join(', ')} or ${items.at(-1)}`;
}

/**
 * Commander's error as one line in burrow's words, with a hint naming the help of the command
 * typed. Commander's sentences are matched by its error code; anything not recognised is still
 * cut to its first line, without commander's trailing full stop.
 */
export function usageFromCommander(error: CommanderError, argv: string[], root: Command | undefined): UsageError {
  const path = commandPath(argv, root);
  const name = ['burrow', ...path].join(' ');
  const help = `${name} --help`;
  const [first = '', ...rest] = error.message.replace(/^error: /, '').split('\n');
  const suggestion = /\(Did you mean (.+)\?\)/.exec(rest.join(' '))?.[1];
  const under = path.length === 0 ? '' : name;
  const usage = (message: string, hint = text.usageHint(help)) => new UsageError(message, { hint, cause: error });
  const quoted = (pattern: RegExp) => pattern.exec(first)?.slice(1) ?? [];
  switch (error.code) {
    case 'commander.unknownCommand': {
      const [command = ''] = quoted(/'(.*)'/);
      return usage(text.unknownCommand(command, under), suggestion ? text.didYouMean(`"${name} ${suggestion}"`, help) : undefined);
    }
    case 'commander.unknownOption': {
      const [flag = ''] = quoted(/'(.*)'/);
      return usage(text.unknownOption(flag, under), suggestion ? text.didYouMean(suggestion, help) : undefined);
    }
    case 'commander.missingArgument': {
      const [argument = ''] = quoted(/'(.*)'/);
      return usage(text.missingArgument(name, `<${argument}>`));
    }
    case 'commander.optionMissingArgument': {
      const [form = ''] = quoted(/'(.*)'/);
      const flag = form.split(/[\s,]+/).find((f) => f.startsWith('--')) ?? form;
      return usage(text.optionNeedsValue(flag, form));
    }
    case 'commander.excessArguments': {
      const [expected = '0', got = '0'] = quoted(/Expected (\d+) arguments? but got (\d+)/);
      return usage(text.excessArguments(name, Number(expected), Number(got)), expected === '0' ? undefined : text.excessArgumentsHint(help));
    }
    case 'commander.invalidArgument': {
      const option = quoted(/^option '([^' ,]+)[^']*' argument '(.*)' is invalid\. Allowed choices are (.*)\.$/);
      if (option.length === 3) return usage(text.invalidChoice(option[0]!, option[1]!, choiceList(option[2]!)));
      const argument = quoted(/^command-argument value '(.*)' is invalid for argument '(.*)'\. Allowed choices are (.*)\.$/);
      if (argument.length === 3) return usage(text.invalidChoice(argument[1]!, argument[0]!, choiceList(argument[2]!)));
      break;
    }
    case 'commander.conflictingOption': {
      const [a, b] = quoted(/option '([^' ,]+)[^']*' cannot be used with option '([^' ,]+)/);
      if (a && b) return usage(text.conflictingFlags(a, b), text.conflictingFlagsHint);
      break;
    }
  }
  return usage(first.replace(/\.$/, ''));
}

/** Parses `argv`, runs the command, and returns the exit code (never exits the process itself). */
export async function main(argv: string[] = process.argv, options: MainOptions = {}): Promise<number> {
  const runtime = options.runtime ?? processRuntime();
  const logger = createLogger({ level: 'error', json: wantsJson(argv), stream: runtime.stderr, env: runtime.env });
  let root: Command | undefined;
  try {
    root = program(runtime);
    const onAction = options.onAction;
    if (onAction) root.hook('preAction', (_root, action) => onAction(actionPath(action).join(' ')));
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

/** The names from the root down to `command`, the root excluded. */
function actionPath(command: Command): string[] {
  const names: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) names.unshift(c.name());
  return names;
}

/** `ENOSPC: no space left on device, write` → `no space left on device`. */
const reason = (error: Error) => error.message.replace(/^[A-Z]+: /, '').replace(/, write$/, '');

/**
 * What a failing stdout means (docs/errors.md). A reader that went away (EPIPE: `| head`,
 * `| true`) ends the command quietly with 141, the status of a process killed by SIGPIPE (Node
 * ignores SIGPIPE, so the write fails instead). Any other write error (ENOSPC on a full disk)
 * is one line and exit 14: the output is incomplete. A tunnel command keeps going: in stdio mode
 * the tunnel owns stdout and ends itself when it fails; a listener's stdout carries only the
 * bound address, which the `listening` line on stderr repeats, so it keeps serving (and says so
 * once when the write failed for another reason than a closed pipe).
 */
function guardStdout(stdout: NodeJS.WriteStream, logger: () => Logger, exit: (code: number) => void): { tunnel(): void } {
  let tunnel = false;
  let reported = false;
  stdout.on('error', (error: NodeJS.ErrnoException) => {
    const closed = error.code === 'EPIPE' || error.code === 'ERR_STREAM_DESTROYED';
    if (tunnel) {
      // A stdio tunnel listens for its stdout's errors itself (tunnel/splice.ts).
      if (closed || reported || stdout.listenerCount('error') > 1) return;
      reported = true;
      logger().warn(text.listenerOutputFailed(reason(error)));
      return;
    }
    if (reported) return;
    reported = true;
    if (closed) return exit(ExitCode.outputClosed);
    logger().failure(new OutputError(text.outputFailed(reason(error)), { hint: text.outputFailedHint }));
    exit(ExitCode.output);
  });
  return { tunnel: () => void (tunnel = true) };
}

/** Runs main and exits: stdio mode keeps stdin open, so the process must be told to go. */
export async function run(): Promise<void> {
  const runtime = processRuntime();
  // Nothing can be said once stderr itself is gone; the exit code still tells.
  process.stderr.on('error', () => {});
  const logger = () => createLogger({ level: 'warn', json: wantsJson(process.argv), stream: runtime.stderr, env: runtime.env });
  const stdout = guardStdout(process.stdout, logger, (code) => process.exit(code));
  const code = await main(process.argv, {
    runtime,
    onAction: (command) => {
      if (TUNNEL_COMMANDS.has(command)) stdout.tunnel();
    },
  });
  // A write's failure is reported on the next tick: let it land before choosing the exit code.
  await new Promise((resolve) => setImmediate(resolve));
  process.exit(code);
}
