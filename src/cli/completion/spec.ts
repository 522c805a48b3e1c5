/**
 * The command tree shell completion is generated from: read off the commander program itself
 * (its visible commands, options, choices and arguments), so completion never drifts from the
 * flags burrow accepts. What a flag's value completes to follows from its definition:
 * `.choices()` gives the words; a value named `<path>`, `<pem>` or `<file>` completes file
 * names; `<program>` completes command names; anything else is free text (no completion).
 */
import type { Argument, Command, Option } from 'commander';

export type ValueKind =
  | { kind: 'choices'; choices: string[] }
  | { kind: 'file' }
  | { kind: 'command' }
  | { kind: 'any' };

export interface FlagSpec {
  long: string | undefined;
  short: string | undefined;
  description: string;
  /** What follows the flag; undefined for a switch. */
  value: (ValueKind & { name: string }) | undefined;
  /** May be given more than once (`--header`). */
  repeatable: boolean;
}

export interface ArgSpec {
  name: string;
  required: boolean;
  variadic: boolean;
  value: ValueKind;
}

export interface CommandSpec {
  name: string;
  /** Subcommand names from the root, e.g. `['cache', 'clear']`; `[]` for burrow itself. */
  path: string[];
  description: string;
  flags: FlagSpec[];
  args: ArgSpec[];
  commands: CommandSpec[];
}

const FILE_VALUES = new Set(['path', 'pem', 'file']);
const COMMAND_VALUES = new Set(['program']);

function valueKind(name: string, choices: readonly string[] | undefined): ValueKind {
  if (choices && choices.length > 0) return { kind: 'choices', choices: [...choices] };
  if (FILE_VALUES.has(name)) return { kind: 'file' };
  if (COMMAND_VALUES.has(name)) return { kind: 'command' };
  return { kind: 'any' };
}

function flagSpec(option: Option): FlagSpec {
  const takesValue = option.required || option.optional;
  const name = /[<[]([^>\]]+)[>\]]/.exec(option.flags)?.[1]?.replace(/\.\.\.$/, '') ?? 'value';
  return {
    long: option.long,
    short: option.short,
    description: option.description,
    value: takesValue ? { name, ...valueKind(name, option.argChoices) } : undefined,
    repeatable: option.variadic || Array.isArray(option.defaultValue),
  };
}

function argSpec(argument: Argument, siblings: string[] | undefined): ArgSpec {
  const name = argument.name();
  // commander's implicit `help [command]` takes the name of a sibling command.
  const choices = argument.argChoices ?? siblings;
  return { name, required: argument.required, variadic: argument.variadic, value: valueKind(name, choices) };
}

/** The completion tree of `command` and everything under it. */
export function describeCommand(command: Command, path: string[] = []): CommandSpec {
  const help = command.createHelp();
  const sub = help.visibleCommands(command);
  const names = sub.map((c) => c.name()).filter((n) => n !== 'help');
  return {
    name: command.name(),
    path,
    description: command.summary() || command.description(),
    flags: help.visibleOptions(command).map(flagSpec),
    args: command.registeredArguments.map((a) => argSpec(a, undefined)),
    commands: sub.map((c) => {
      const spec = describeCommand(c, [...path, c.name()]);
      if (c.name() === 'help' && c.registeredArguments.length === 1 && spec.args[0]) {
        spec.args[0] = argSpec(c.registeredArguments[0]!, names);
      }
      return spec;
    }),
  };
}

/** Every command in the tree, parents before children. */
export function allCommands(spec: CommandSpec): CommandSpec[] {
  return [spec, ...spec.commands.flatMap(allCommands)];
}

/** The flag names of `flag`, long first (`--verbose`, `-v`). */
export function flagNames(flag: FlagSpec): string[] {
  return [flag.long, flag.short].filter((n): n is string => n !== undefined);
}

/** A shell-safe identifier for a command path (`cache location` → `cache_location`). */
export function ident(path: string[]): string {
  return path.map((p) => p.replace(/[^A-Za-z0-9]/g, '_')).join('_');
}
