/**
 * burrow's config file: `$XDG_CONFIG_HOME/burrow/config.yaml` (env-paths' config directory on
 * macOS and Windows), or the file BURROW_CONFIG names. Its keys are spelled like the long flags:
 *
 *   defaults:            configurable flags (flags.ts), for every command that takes them
 *     pomerium-url: https://pomerium.corp.example.com
 *   tunnels:             name → destination, listen and tunnel flags (for `burrow up`)
 *     gitlab: { destination: git.corp.example.com:22, listen: 127.0.0.1:2202 }
 *
 * Every value is checked with its flag's own parser when the file is read, and every mistake is
 * one line naming the file, the line and the key (exit 2, BURROW_CONFIG). Where a value comes
 * from is decided in one place, {@link applyDefaults} (main.ts's preAction hook): the command
 * line, then the environment (the flag table's `env`), then the file, then the flag's default.
 *
 * Start-up cost: with no file (the common case under an ssh ProxyCommand) this is one failed
 * read; the YAML parser loads only when there is a file to parse.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import type { Command } from 'commander';
import envPaths from 'env-paths';
import type { Document, LineCounter } from 'yaml';
import { BurrowError, ExitCode, UsageError } from '../errors.js';
import { importPart, missingPart } from '../external.js';
import { text } from '../output/messages.js';
import { resolveTransport, type TransportChoice } from '../tunnel/transports.js';
import type { CommandName } from './command-table.js';
import { type DestinationFamily, parseTarget } from './destination.js';
import { defaultValues, FLAGS, type FlagEntry, flagsOf, optionOf } from './flags.js';
import { DEFAULT_LISTEN, parseListen } from './listen-address.js';

/** One `key: value` of the file: a flag's long name and its value as the command line would have it. */
export interface ConfigSetting {
  /** The long flag's name, as written: `connect-timeout`, `no-proxy`. */
  readonly key: string;
  /** A value flag's value (a path made absolute), a repeatable flag's values, or a switch's `true`/`false`. */
  readonly value: string | boolean | readonly string[];
  readonly line: number;
}

/** One entry of `tunnels:`, checked, for `burrow up`. */
export interface TunnelConfig {
  readonly name: string;
  readonly line: number;
  /** `udp` for a `udp+https://` (or `udp+http://`) destination, `tcp` otherwise. */
  readonly family: DestinationFamily;
  /** As `burrow tcp` / `burrow udp` take it. */
  readonly destination: string;
  /** As `--listen` takes it; undefined = the command's default (a free loopback port). */
  readonly listen: string | undefined;
  /** The line of its `listen:` (the tunnel's own line when it has none). */
  readonly listenLine: number;
  /** The entry's other keys (transport, pomerium-url, max-duration, …), each a flag the family's command takes. */
  readonly settings: readonly ConfigSetting[];
}

export interface BurrowConfig {
  readonly path: string;
  readonly defaults: readonly ConfigSetting[];
  readonly tunnels: readonly TunnelConfig[];
}

/** Which file is in use, and whether BURROW_CONFIG named it (then it must exist). */
export interface ConfigLocation {
  readonly path: string;
  readonly named: boolean;
}

function home(env: NodeJS.ProcessEnv): string {
  return env.HOME || homedir();
}

/**
 * burrow's config directory. On Linux and the BSDs `$XDG_CONFIG_HOME/burrow` or
 * `~/.config/burrow`, computed from `env` (env-paths reads the real process.env); elsewhere
 * env-paths' answer (`~/Library/Preferences/burrow`, `%APPDATA%\burrow\Config`).
 */
export function configDir(env: NodeJS.ProcessEnv): string {
  if (process.platform === 'darwin' || process.platform === 'win32') return envPaths('burrow', { suffix: '' }).config;
  // The XDG spec says a relative value is invalid and must be ignored.
  const xdg = env.XDG_CONFIG_HOME && isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : undefined;
  return join(xdg ?? join(home(env), '.config'), 'burrow');
}

export function configLocation(env: NodeJS.ProcessEnv): ConfigLocation {
  const named = env.BURROW_CONFIG;
  if (named) return { path: resolve(expandHome(named, env)), named: true };
  return { path: join(configDir(env), 'config.yaml'), named: false };
}

function expandHome(value: string, env: NodeJS.ProcessEnv): string {
  return value === '~' ? home(env) : value.startsWith('~/') ? join(home(env), value.slice(2)) : value;
}

/** The long flag's name of an entry: `--connect-timeout <seconds>` → `connect-timeout`. */
export function settingKey(entry: FlagEntry): string {
  return /--([a-z0-9-]+)/.exec(entry.flags)![1]!;
}

const ENTRIES = new Map(FLAGS.map((entry) => [settingKey(entry), entry]));

/** The flags a config file may never set, and why (flags.ts: `configurable`). */
function refusal(key: string): { why: string; hint: string } {
  switch (key) {
    case 'service-account':
      return { why: text.configSecret, hint: text.configServiceAccountHint };
    case 'header':
      return { why: text.configSecret, hint: text.configOnCommandLineHint };
    case 'disable-tls-verification':
      return { why: text.configSafetySwitch, hint: text.configOnCommandLineHint };
    case 'listen':
    case 'transport':
      return { why: text.configOneRun, hint: text.configInTunnelHint };
    default:
      return { why: text.configOneRun, hint: text.configOnCommandLineHint };
  }
}

/** A switch (`--no-proxy`, `--close-on-token-expiry`) takes true or false in the file; the rest a value. */
function isSwitch(entry: FlagEntry): boolean {
  const option = optionOf(entry, entry.commands[0]!);
  return !option.required && !option.optional;
}

/** Checks one value as the command line would (choices, then the flag's parser); throws its UsageError. */
function checkValue(entry: FlagEntry, key: string, value: string): void {
  if (entry.choices && !entry.choices.includes(value)) {
    throw new UsageError(text.invalidChoice(`--${key}`, value, entry.choices.join(', ')));
  }
  entry.parse?.(value);
}

/** Closest of `candidates` to `word`, if close enough to be a typo. */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const candidate of candidates) {
    const d = editDistance(word, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = row;
  }
  return previous[b.length]!;
}

type Yaml = typeof import('yaml');
type YamlNode = NonNullable<Document['contents']>;

/** A key and its value node, with the key's line. */
interface Entry {
  key: string;
  node: YamlNode | null;
  line: number;
}

/** Reads the file in use; undefined when there is none at the default path. */
export async function loadConfig(env: NodeJS.ProcessEnv): Promise<BurrowConfig | undefined> {
  const { path, named } = configLocation(env);
  let source: string;
  try {
    source = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const missing = code === 'ENOENT' || code === 'ENOTDIR';
    if (missing && !named) return undefined;
    if (missing) throw new UsageError(text.configMissing(path), { code: 'BURROW_CONFIG', hint: text.configMissingHint, cause: error });
    throw new UsageError(text.configUnreadable(path, code === 'EISDIR' ? 'it is a directory' : ((error as Error).message ?? String(error))), {
      code: 'BURROW_CONFIG',
      hint: text.configUnreadableHint,
      cause: error,
    });
  }
  return parseConfig(source, path, env);
}

/** Parses and checks a config file's text; every mistake is a UsageError naming `path`, a line and a key. */
export async function parseConfig(source: string, path: string, env: NodeJS.ProcessEnv): Promise<BurrowConfig> {
  return new ConfigReader(await yamlParser(), source, path, env).read();
}

/** The YAML parser: a part of the bundle, loaded on first use (external.ts). */
async function yamlParser(): Promise<Yaml> {
  try {
    return await importPart<Yaml>('yaml');
  } catch (error) {
    const missing = missingPart(error, 'yaml');
    if (missing === undefined) throw error;
    // <root>/dist/bin/yaml.cjs, said the way bin/burrow.js says a missing bundle.
    const root = dirname(dirname(dirname(missing)));
    throw new BurrowError('BURROW_INTERNAL', ExitCode.internal, text.partMissing(join('dist', 'bin', basename(missing))), {
      hint: text.partMissingHint(root),
      cause: error,
    });
  }
}

class ConfigReader {
  private readonly lines: LineCounter;
  private readonly doc: Document;

  constructor(
    private readonly yaml: Yaml,
    source: string,
    private readonly path: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {
    this.lines = new yaml.LineCounter();
    // Duplicate keys are found below, to name the key and both lines.
    this.doc = yaml.parseDocument(source, { lineCounter: this.lines, uniqueKeys: false, schema: 'core', prettyErrors: false });
  }

  private fail(line: number, message: string, hint?: string, cause?: unknown): UsageError {
    return new UsageError(text.configAt(this.path, line, message), { code: 'BURROW_CONFIG', hint: hint ?? text.configFixHint, cause });
  }

  private lineOf(node: { range?: readonly number[] | null | undefined } | null | undefined, fallback = 1): number {
    const offset = node?.range?.[0];
    return offset === undefined ? fallback : this.lines.linePos(offset).line;
  }

  /** What a node is, in words, for "must be ..., not ...". */
  private kind(node: YamlNode | null): string {
    const { isMap, isScalar, isSeq } = this.yaml;
    if (node === null) return text.configKindEmpty;
    if (isSeq(node)) return text.configKindList;
    if (isMap(node)) return text.configKindMapping;
    if (isScalar(node)) {
      if (node.value === null) return text.configKindEmpty;
      if (typeof node.value === 'boolean') return String(node.value);
      if (typeof node.value === 'number') return text.configKindNumber;
      return text.configKindString;
    }
    return text.configKindOther;
  }

  private resolved(node: unknown): YamlNode | null {
    if (this.yaml.isAlias(node)) return (node.resolve(this.doc) as YamlNode | undefined) ?? null;
    return (node as YamlNode | null) ?? null;
  }

  /** The pairs of a mapping at `where` (`defaults`, `tunnels.gitlab`), duplicate keys refused. */
  private mapping(node: YamlNode | null, where: string, line: number): Entry[] {
    if (!this.yaml.isMap(node)) throw this.fail(this.lineOf(node, line), text.configWrongType(where || 'the file', text.configKindMapping, this.kind(node)));
    const seen = new Map<string, number>();
    const entries: Entry[] = [];
    for (const pair of node.items) {
      const keyNode = this.resolved(pair.key);
      const keyLine = this.lineOf(keyNode, this.lineOf(node, line));
      const name = (prefix: string) => (where === '' ? prefix : `${where}.${prefix}`);
      if (!this.yaml.isScalar(keyNode) || typeof keyNode.value !== 'string') throw this.fail(keyLine, text.configBadKey(where === '' ? 'the file' : where));
      const key = keyNode.value;
      const first = seen.get(key);
      if (first !== undefined) throw this.fail(keyLine, text.configDuplicate(name(key), first));
      seen.set(key, keyLine);
      entries.push({ key, node: this.resolved(pair.value), line: keyLine });
    }
    return entries;
  }

  read(): BurrowConfig {
    const error = this.doc.errors[0];
    if (error) throw this.fail(this.lines.linePos(error.pos[0]).line, text.configBadYaml(error.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')));
    const root = this.doc.contents;
    // An empty file, or one of comments only, sets nothing.
    if (root === null || (this.yaml.isScalar(root) && root.value === null)) return { path: this.path, defaults: [], tunnels: [] };
    let defaults: ConfigSetting[] = [];
    const tunnels: TunnelConfig[] = [];
    for (const { key, node, line } of this.mapping(root, '', 1)) {
      if (key === 'defaults') {
        if (node === null || (this.yaml.isScalar(node) && node.value === null)) continue;
        defaults = this.settings(this.mapping(node, 'defaults', line), 'defaults', (entry) => entry.configurable);
      } else if (key === 'tunnels') {
        if (node === null || (this.yaml.isScalar(node) && node.value === null)) continue;
        for (const tunnel of this.mapping(node, 'tunnels', line)) {
          const read = this.tunnel(tunnel);
          this.checkListenFree(read, tunnels);
          tunnels.push(read);
        }
      } else {
        throw this.fail(line, text.configNotASetting(key), text.configTopHint(closest(key, ['defaults', 'tunnels'])));
      }
    }
    return { path: this.path, defaults, tunnels };
  }

  /**
   * Two tunnels of one family cannot listen on one port of one address (or of every address):
   * the second would fail to bind whenever `burrow up` starts. Port 0 (a free port) never clashes.
   */
  private checkListenFree(tunnel: TunnelConfig, earlier: readonly TunnelConfig[]): void {
    const bound = listenOf(tunnel);
    if (bound === undefined) return;
    for (const other of earlier) {
      const taken = other.family === tunnel.family ? listenOf(other) : undefined;
      if (taken === undefined || taken.port !== bound.port) continue;
      if (taken.host === bound.host || WILDCARDS.has(taken.host) || WILDCARDS.has(bound.host)) {
        throw this.fail(tunnel.listenLine, text.configListenTaken(`tunnels.${tunnel.name}.listen`, tunnel.listen!, `tunnels.${other.name}`, other.listenLine), text.configListenTakenHint);
      }
    }
  }

  /** A mapping's pairs as flag settings; `allowed` says which flags may appear at `where`. */
  private settings(entries: Entry[], where: string, allowed: (entry: FlagEntry) => boolean): ConfigSetting[] {
    const settings = entries.map((entry) => this.setting(entry, where, allowed));
    const has = (key: string, value?: unknown) => settings.some((s) => s.key === key && (value === undefined || s.value === value));
    const proxy = settings.find((s) => s.key === 'proxy');
    if (proxy && has('no-proxy', true)) throw this.fail(proxy.line, text.configConflict(`${where}.proxy`, `${where}.no-proxy`));
    return settings;
  }

  private setting({ key, node, line }: Entry, where: string, allowed: (entry: FlagEntry) => boolean): ConfigSetting {
    const name = `${where}.${key}`;
    const entry = ENTRIES.get(key);
    if (entry === undefined) {
      const keys = [...ENTRIES].filter(([, e]) => allowed(e)).map(([k]) => k);
      const suggestion = closest(key, where.startsWith('tunnels.') ? ['destination', ...keys] : keys);
      throw this.fail(line, text.configNotASetting(name), suggestion ? text.configDidYouMean(suggestion) : text.configSettingsHint);
    }
    if (!allowed(entry)) {
      const { why, hint } = refusal(key);
      throw this.fail(line, text.configRefused(name, why), hint);
    }
    const { isScalar } = this.yaml;
    const scalar = isScalar(node) ? node.value : undefined;
    if (isSwitch(entry)) {
      if (typeof scalar !== 'boolean') throw this.fail(this.lineOf(node, line), text.configWrongType(name, 'true or false', this.kind(node)));
      return { key, value: scalar, line };
    }
    if (entry.repeatable) {
      // A list, as the flag given once per item; a single value is a list of one.
      const items = this.yaml.isSeq(node) ? (node.items as (YamlNode | null)[]) : [node];
      const values = items.map((item) => this.value(entry, key, name, item, line, text.configKindValues));
      return { key, value: values, line };
    }
    return { key, value: this.value(entry, key, name, node, line, text.configKindValue), line };
  }

  /** One scalar value of `entry`, checked with its flag's parser (a path made absolute). */
  private value(entry: FlagEntry, key: string, name: string, node: YamlNode | null, line: number, expected: string): string {
    const scalar = this.yaml.isScalar(node) ? node.value : undefined;
    const pathLike = entry.passOn === 'path';
    if (typeof scalar !== 'string' && (pathLike || typeof scalar !== 'number' || !Number.isFinite(scalar))) {
      throw this.fail(this.lineOf(node, line), text.configWrongType(name, pathLike ? text.configKindPath : expected, this.kind(node)));
    }
    let value = String(scalar);
    // `~` is the home directory; a relative path is relative to this file, not to wherever burrow runs.
    if (pathLike) value = resolve(dirname(this.path), expandHome(value, this.env));
    try {
      checkValue(entry, key, value);
    } catch (error) {
      if (!(error instanceof BurrowError)) throw error;
      throw this.fail(this.lineOf(node, line), text.configBadValue(name, error.message), error.hint, error);
    }
    return value;
  }

  private tunnel({ key: name, node, line }: Entry): TunnelConfig {
    const where = `tunnels.${name}`;
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw this.fail(line, text.configTunnelName(name));
    const entries = this.mapping(node, where, line);
    const destinationEntry = entries.find((e) => e.key === 'destination');
    // What a tunnel may carry: the configurable flags of tcp or udp, and its own listen and transport.
    const allowed = (entry: FlagEntry) =>
      (entry.commands.includes('tcp') || entry.commands.includes('udp')) && (entry.configurable || entry.flags.startsWith('--listen') || entry.flags.startsWith('--transport'));
    const settings = this.settings(
      entries.filter((e) => e !== destinationEntry),
      where,
      allowed,
    );
    if (destinationEntry === undefined) throw this.fail(line, text.configNeedsDestination(where));
    const dest = this.yaml.isScalar(destinationEntry.node) ? destinationEntry.node.value : undefined;
    if (typeof dest !== 'string') throw this.fail(destinationEntry.line, text.configWrongType(`${where}.destination`, text.configKindString, this.kind(destinationEntry.node)));
    const family: DestinationFamily = /^\s*udp\+https?:\/\//i.test(dest) ? 'udp' : 'tcp';
    for (const setting of settings) {
      if (!ENTRIES.get(setting.key)!.commands.includes(family)) throw this.fail(setting.line, text.configNotForFamily(`${where}.${setting.key}`, family));
    }
    const valueOf = (key: string) => settings.find((s) => s.key === key)?.value as string | undefined;
    const listen = valueOf('listen');
    const check = (at: number, run: () => void) => {
      try {
        run();
      } catch (error) {
        if (!(error instanceof BurrowError)) throw error;
        throw this.fail(at, text.configBadValue(where, error.message), error.hint, error);
      }
    };
    check(destinationEntry.line, () => {
      const target = parseTarget(dest, valueOf('pomerium-url'), family);
      if (family === 'tcp') resolveTransport((valueOf('transport') ?? 'auto') as TransportChoice, target, dest);
    });
    const listenLine = settings.find((s) => s.key === 'listen')?.line ?? line;
    if (listen !== undefined && parseListen(listen).kind === 'stdio') throw this.fail(listenLine, text.configTunnelStdio(`${where}.listen`));
    return { name, line, family, destination: dest.trim(), listen, listenLine, settings: settings.filter((s) => s.key !== 'listen') };
  }
}

/** Hosts a listener binds on every address of (of its family, and on most systems both). */
const WILDCARDS: ReadonlySet<string> = new Set(['0.0.0.0', '::', '[::]']);

/** The host and port a tunnel binds, `localhost` as the address it binds; undefined for a free port. */
function listenOf(tunnel: TunnelConfig): { host: string; port: number } | undefined {
  const listen = parseListen(tunnel.listen ?? DEFAULT_LISTEN);
  if (listen.kind !== 'tcp' || listen.port === 0) return undefined;
  const host = listen.host.toLowerCase();
  return { host: host === 'localhost' ? '127.0.0.1' : host, port: listen.port };
}

/**
 * Variables the layers below read themselves (store/select.ts takes BURROW_CREDENTIAL_STORE,
 * `auto` and any case included): here they only hide the file's value, and are checked there.
 */
const READ_BELOW: ReadonlySet<string> = new Set(['credential-store']);

/** Where an effective default comes from: the flag's own default, the environment, or the file. */
export type SettingSource = 'default' | 'env' | 'file';

export interface EffectiveSetting {
  readonly key: string;
  readonly entry: FlagEntry;
  /** undefined: not set anywhere, and the flag has no default. */
  readonly value: string | boolean | readonly string[] | undefined;
  readonly source: SettingSource;
  /** The variable, for `env`; the line, for `file`. */
  readonly env?: string;
  readonly line?: number;
}

/**
 * Every configurable flag's default as the environment and `config` make it (the command line
 * aside): what `burrow config show` prints and what {@link applyDefaults} applies.
 */
export function effectiveDefaults(config: BurrowConfig | undefined, env: NodeJS.ProcessEnv): EffectiveSetting[] {
  const fromFile = new Map((config?.defaults ?? []).map((s) => [s.key, s]));
  const result: EffectiveSetting[] = [];
  for (const entry of FLAGS) {
    if (!entry.configurable) continue;
    const key = settingKey(entry);
    const variable = entry.env;
    const fromEnv = variable === undefined ? undefined : env[variable];
    if (variable !== undefined && fromEnv !== undefined && fromEnv !== '') {
      try {
        if (!READ_BELOW.has(key)) checkValue(entry, key, fromEnv.trim());
      } catch (error) {
        if (!(error instanceof BurrowError)) throw error;
        throw new UsageError(text.configBadEnv(variable, error.message), { hint: error.hint ?? text.configEnvHint(variable), cause: error });
      }
      result.push({ key, entry, value: fromEnv.trim(), source: 'env', env: variable });
      continue;
    }
    const setting = fromFile.get(key);
    if (setting) result.push({ key, entry, value: setting.value, source: 'file', line: setting.line });
    else result.push({ key, entry, value: typeof entry.default === 'string' ? entry.default : undefined, source: 'default' });
  }
  return result;
}

/**
 * Whether a destination names its own proxy (`wss://gw/path`, `tcp+https://proxy/host:port`, a
 * proxy URL given to ssh-config): then a default --pomerium-url does not apply to it.
 */
export function namesProxy(destination: string): boolean {
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/]*)(\/.*)?$/.exec(destination.trim());
  if (!match) return false;
  const scheme = match[1]!.toLowerCase();
  if (/^(tcp|udp)\+https?$/.test(scheme)) return (match[3] ?? '').replace(/\/$/, '') !== '';
  return true;
}

/** The commander option value a setting stands for (a negated switch set to true is `false`), or undefined for none. */
function optionValue(entry: FlagEntry, command: CommandName, value: string | boolean | readonly string[]): unknown {
  const option = optionOf(entry, command);
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return [...(value as readonly string[])];
  if (!value) return undefined;
  return option.negate ? false : true;
}

/**
 * `settings` as commander option values of `command` (attribute name → value): what `burrow up`
 * starts a tunnel's command from. Settings `command` does not take are left out.
 */
export function optionValues(settings: readonly ConfigSetting[], command: CommandName): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const setting of settings) {
    const entry = ENTRIES.get(setting.key);
    if (!entry?.commands.includes(command)) continue;
    const value = optionValue(entry, command, setting.value);
    if (value !== undefined) values[optionOf(entry, command).attributeName()] = value;
  }
  return values;
}

/**
 * The option values `burrow up` starts `tunnel` with, as `burrow tcp` or `burrow udp` would take
 * them: the flags' defaults, under the file's `defaults:` and the environment (as for any
 * command; a default --pomerium-url not for a destination that names its proxy), under the
 * tunnel's own keys, under `overrides` (what `burrow up`'s own command line gave).
 */
export function tunnelValues(tunnel: TunnelConfig, config: BurrowConfig, env: NodeJS.ProcessEnv, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const command = tunnel.family;
  const values = defaultValues(command);
  for (const setting of effectiveDefaults(config, env)) {
    if (setting.source === 'default' || setting.value === undefined || !setting.entry.commands.includes(command)) continue;
    if (setting.source === 'env' && READ_BELOW.has(setting.key)) continue;
    if (setting.key === 'pomerium-url' && namesProxy(tunnel.destination)) continue;
    const value = optionValue(setting.entry, command, setting.value);
    if (value !== undefined) values[optionOf(setting.entry, command).attributeName()] = value;
  }
  Object.assign(values, optionValues(tunnel.settings, command));
  if (tunnel.listen !== undefined) values.listen = tunnel.listen;
  // --verbose given to `burrow up` beats a --log-level from anywhere else, as for any command.
  if (overrides.verbose === true && overrides.logLevel === undefined) delete values.logLevel;
  return { ...values, ...overrides };
}

/**
 * Fills in `command`'s option values that its command line left out, from the environment and
 * the config file (the one place where precedence is decided): command line > environment >
 * file > the flag's default. Flags the command does not take are ignored. A default
 * --pomerium-url does not apply to a destination that names its proxy; --verbose on the command
 * line beats a --log-level from anywhere else. Sources are commander's: `env`, or `config`.
 */
export async function applyDefaults(command: Command, name: CommandName, env: NodeJS.ProcessEnv): Promise<void> {
  const flags = flagsOf(name).filter((entry) => entry.configurable);
  if (flags.length === 0) return;
  const config = await loadConfig(env);
  const effective = new Map(effectiveDefaults(config, env).map((s) => [s.key, s]));
  const argument = command.args[0];
  for (const entry of flags) {
    const setting = effective.get(settingKey(entry));
    if (setting === undefined || setting.source === 'default' || setting.value === undefined) continue;
    if (setting.source === 'env' && READ_BELOW.has(setting.key)) continue;
    const attribute = optionOf(entry, name).attributeName();
    if (command.getOptionValueSource(attribute) === 'cli') continue;
    if (setting.key === 'log-level' && command.getOptionValueSource('verbose') === 'cli') continue;
    if (setting.key === 'pomerium-url' && argument !== undefined && namesProxy(argument)) continue;
    const value = optionValue(entry, name, setting.value);
    if (value !== undefined) command.setOptionValueWithSource(attribute, value, setting.source === 'env' ? 'env' : 'config');
  }
}

/**
 * The option values of `command` that a command it writes (ssh-config's ProxyCommand, the
 * kubeconfig's exec-credential) will find by itself when it runs: those from the environment
 * (its environment has them too, as it has HTTPS_PROXY) and those from the default config
 * file (it reads the same file). Values from a file BURROW_CONFIG named are not among them:
 * ssh or kubectl may run without BURROW_CONFIG, so those are written out.
 */
export function inheritedValues(command: Command, env: NodeJS.ProcessEnv): Set<string> {
  const inherited = new Set<string>();
  const named = Boolean(env.BURROW_CONFIG);
  for (const option of command.options) {
    const attribute = option.attributeName();
    const source = command.getOptionValueSource(attribute);
    if (source === 'env' || (source === 'config' && !named)) inherited.add(attribute);
  }
  return inherited;
}
