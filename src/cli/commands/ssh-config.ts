/**
 * `burrow ssh-config <host pattern | proxy URL | destination>` prints a ready `~/.ssh/config`
 * block whose ProxyCommand runs this very burrow (absolute paths, so ssh's PATH does not matter),
 * with every tunnel flag given here that differs from its default passed on (the flag table,
 * flags.ts, says which and how), plus keepalives so idle sessions survive NAT and load balancers.
 * Every value is checked now, so a bad one fails here rather than at every ssh. What the
 * ProxyCommand's burrow finds by itself when ssh runs it (the environment, the default config
 * file) is not written, so editing the file changes every host; a BURROW_CONFIG file's values are.
 *
 *   git.corp.example.com, "*.corp.example.com"       the Host pattern; each host's %h:%p is tunnelled to
 *   https://proxy.corp.example.com --host PATTERN    the same through that proxy (as --pomerium-url)
 *   wss://gw/ssh, tcp+https://proxy/db:5432, host:port --host PATTERN
 *                                                    every host of PATTERN goes to that one destination
 */
import { chmod } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { OutputError, UsageError } from '../../errors.js';
import { parseForwardProxy, type ProxySettingValues } from '../../net/proxy-env.js';
import { buildTls, type TlsFlags } from '../../net/tls.js';
import { text } from '../../output/messages.js';
import type { PortalRoute } from '../../net/routes-api.js';
import { parseProxyOrigin, parseProxyUrl, parseTarget } from '../destination.js';
import { addFlags, checkValues, defaultValues, flagsOf, optionOf } from '../flags.js';
import { parseControlPersist, parseHostPattern, parseServerAliveInterval, serviceAccountToken, type SessionLimitValues } from '../options.js';
import { cacheDir } from '../../store/cache-dir.js';
import { ensureDir } from '../../store/ensure-dir.js';
import { commandLogger, proxyAccess, type ProxyAccessValues } from '../proxy-access.js';
import { routesSignedIn } from './routes.js';
import { resolveTransport, type TransportChoice } from '../../tunnel/transports.js';
import type { CommandName } from '../command-table.js';
import { inheritedValues } from '../config.js';
import type { Runtime } from '../runtime.js';
import type { SignInValues } from '../sign-in.js';

export interface SshConfigValues extends TlsFlags, Partial<SignInValues>, SessionLimitValues, ProxySettingValues {
  host?: string;
  user?: string;
  pomeriumUrl?: string;
  serviceAccountFile?: string;
  /** Those with a default are filled in from the flag table when missing. */
  serverAliveInterval?: string;
  connectTimeout?: string;
  transport?: TransportChoice;
  pingInterval?: string;
  header?: string[];
  multiplex?: boolean;
  controlPersist?: string;
  /** `--from-routes`: the argument is a proxy; one block per tcp+https://host:22 route it lists. */
  fromRoutes?: boolean;
}

/** ssh's ControlPersist when --multiplex is given without --control-persist. */
export const DEFAULT_CONTROL_PERSIST = '10m';

/**
 * The longest control socket directory: a Unix socket path holds 107 bytes on Linux (103 on
 * macOS and the BSDs) before its NUL, and ssh binds `<dir>/%C` (40 hex) plus a 17-character
 * temporary suffix before renaming it into place.
 */
export const CONTROL_DIR_MAX = (process.platform === 'linux' ? 107 : 103) - 1 - 40 - 17;

/** The 0700 directory of ssh's control sockets for `--multiplex`: burrow's, in its cache directory. */
export function controlDir(env: NodeJS.ProcessEnv): string {
  return join(cacheDir(env), 'ssh');
}

/** Creates the control socket directory, or makes an existing one 0700 again (it is burrow's own). */
async function ensureControlDir(dir: string): Promise<void> {
  try {
    await ensureDir(dir, 0o700);
    await chmod(dir, 0o700);
  } catch (error) {
    throw new OutputError(text.controlDirFailed(dir, (error as NodeJS.ErrnoException).code ?? String(error)), { hint: text.controlDirFailedHint });
  }
}

/** The ControlPath line's value: the directory with `%` doubled (ssh expands %-tokens), then ssh's `%C`; quoted when it has a space. */
function controlPathValue(dir: string): string {
  const path = `${dir.replace(/%/g, '%%')}/%C`;
  return /[\s"]/.test(path) ? `"${path.replace(/"/g, '\\"')}"` : path;
}

/** Quotes one argument for the /bin/sh that ssh runs ProxyCommand with, and escapes ssh's %. */
export function proxyCommandArg(value: string): string {
  const quoted = /^[A-Za-z0-9_/.:=@+,-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
  return quoted.replace(/%/g, '%%');
}

export function registerSshConfig(program: Command, runtime: Runtime): void {
  const command = program
    .command('ssh-config')
    .description('print a ~/.ssh/config block that sends ssh to these hosts through burrow')
    .argument(
      '<host-or-proxy>',
      'an ssh Host pattern (git.corp.example.com, "*.corp.example.com"), or the proxy URL, or a destination as tcp takes it (wss://host/path, tcp+https://proxy/host:port; then --host)',
    );
  addFlags(command, 'ssh-config');
  command.addHelpText(
    'after',
    `
Examples:
  $ burrow ssh-config git.corp.example.com --user git >> ~/.ssh/config
  $ burrow ssh-config https://proxy.corp.example.com --host '*.corp.example.com' >> ~/.ssh/config
  $ burrow ssh-config wss://gateway.corp.example.com/ssh --host gitlab --header "PRIVATE-TOKEN: …" >> ~/.ssh/config
  $ burrow ssh-config tcp+https://proxy.corp.example.com/db.internal:22 --host db >> ~/.ssh/config
  $ burrow ssh-config --from-routes https://proxy.corp.example.com --user git >> ~/.ssh/config
`,
  );
  command.action(async (argument: string, values: SshConfigValues, self: Command) => {
    const inherited = inheritedValues(self, runtime.env);
    const block = values.fromRoutes
      ? await sshConfigFromRoutes(argument, values, runtime, inherited, self.getOptionValueSource('pomeriumUrl') === 'cli')
      : sshConfigBlock(argument, values, runtime, { inherited });
    // ssh does not create the ControlPath's directory: a missing one fails every connection.
    if (values.multiplex === true) await ensureControlDir(controlDir(runtime.env));
    runtime.stdout.write(block);
  });
}

/** What the argument is: a proxy URL (http[s]://), a destination (another scheme, or host:port), or a Host pattern. */
function argumentKind(argument: string): 'proxy-url' | 'destination' | 'pattern' {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(argument.trim())?.[1]?.toLowerCase();
  if (scheme === 'https' || scheme === 'http') return 'proxy-url';
  // Host patterns have neither a scheme nor a colon.
  return scheme !== undefined || argument.includes(':') || argument.trim().startsWith('[') ? 'destination' : 'pattern';
}

/**
 * The block for `argument` (a Host pattern, a proxy URL or a destination) and the flags given.
 * `shown` is what its comment says to run again (the argument itself, unless told otherwise);
 * `inherited`: the option values (attribute names) the ProxyCommand's burrow will find by itself
 * when ssh runs it, from the environment or the default config file (config.ts,
 * inheritedValues): they are not written, so editing the file changes every host's ProxyCommand.
 */
export function sshConfigBlock(
  argument: string,
  given: SshConfigValues,
  runtime: Runtime,
  { shown = argument, inherited = new Set<string>() }: { shown?: string; inherited?: ReadonlySet<string> } = {},
): string {
  const values = { ...defaultValues('ssh-config'), ...given } as SshConfigValues & Record<string, unknown>;
  const kind = argumentKind(argument);
  let pattern = values.host;
  // ssh's %h:%p (left unquoted), or the one destination every matching host goes to.
  let destination = '%h:%p';
  let proxyScheme: 'https' | 'http' = 'https';
  let websocket = false;
  if (kind === 'proxy-url') {
    if (values.pomeriumUrl !== undefined) throw new UsageError(text.conflictingFlags('a proxy URL argument', '--pomerium-url'), { hint: text.conflictingFlagsHint });
    values.pomeriumUrl = argument;
    if (pattern === undefined) throw new UsageError(text.sshConfigNeedsHost(argument), { hint: text.sshConfigNeedsHostHint });
  } else if (kind === 'destination') {
    if (pattern === undefined) throw new UsageError(text.sshConfigNeedsHostForDestination(argument), { hint: text.sshConfigNeedsHostHint });
    // As tcp will parse it (--pomerium-url included: it may not go with wss://).
    const target = parseTarget(argument, values.pomeriumUrl);
    destination = argument.trim();
    proxyScheme = target.proxy.scheme;
    websocket = target.websocket !== undefined;
  } else {
    if (pattern !== undefined) throw new UsageError(text.conflictingFlags('a host pattern argument', '--host'), { hint: text.conflictingFlagsHint });
    pattern = argument;
  }
  pattern = parseHostPattern(pattern);
  // Validate now what the ProxyCommand would otherwise reject at every ssh: each value, then
  // what depends on several.
  checkValues('ssh-config', values);
  if (kind !== 'destination' && values.pomeriumUrl !== undefined) proxyScheme = parseProxyUrl(values.pomeriumUrl, '--pomerium-url').scheme;
  resolveTransport(values.transport ?? 'auto', { websocket: websocket ? { url: destination } : undefined }, argument);
  const forward = typeof values.proxy === 'string' ? parseForwardProxy(values.proxy, '--proxy') : undefined;
  if (proxyScheme === 'https' || forward?.scheme === 'https') buildTls(values, runtime.env);
  const interval = parseServerAliveInterval(values.serverAliveInterval ?? '30');
  if (values.controlPersist !== undefined && values.multiplex !== true) {
    throw new UsageError(text.controlPersistWithoutMultiplex, { hint: text.controlPersistWithoutMultiplexHint });
  }
  const persist = values.multiplex === true ? parseControlPersist(values.controlPersist ?? DEFAULT_CONTROL_PERSIST) : undefined;
  const sockets = controlDir(runtime.env);
  if (persist !== undefined && Buffer.byteLength(sockets) > CONTROL_DIR_MAX) {
    throw new UsageError(text.controlPathTooLong(sockets, CONTROL_DIR_MAX), { hint: text.controlPathTooLongHint });
  }

  // %h:%p are ssh's tokens and stay unquoted; everything else is quoted for sh and ssh.
  const args = ['tcp', '--listen', '-', destination, ...passedOn(values, 'ssh-config', inherited)];
  const command = [...runtime.selfCommand(), ...args].map((a) => (a === '%h:%p' ? a : proxyCommandArg(a))).join(' ');
  const lines = [
    `# burrow ${runtime.version}: ssh to ${pattern} through the identity-aware proxy.`,
    `# Append to ~/.ssh/config, e.g.: burrow ssh-config ${shown} >> ~/.ssh/config`,
    ...(persist === undefined ? [] : text.sshConfigMultiplexNote(persist).split('\n').map((line) => `# ${line}`)),
    `Host ${pattern}`,
    `  ProxyCommand ${command}`,
  ];
  if (interval > 0) lines.push(`  ServerAliveInterval ${interval}`, '  ServerAliveCountMax 4');
  if (values.user !== undefined) lines.push(`  User ${values.user}`);
  if (persist !== undefined) lines.push('  ControlMaster auto', `  ControlPath ${controlPathValue(sockets)}`, `  ControlPersist ${persist}`);
  return `${lines.join('\n')}\n`;
}

/**
 * `--from-routes`: one block, as {@link sshConfigBlock} writes it for a Host pattern, per
 * `tcp+https://host:22` route the proxy lists (routes.ts asks, signing in if needed), with
 * `--pomerium-url` passed on when the proxy is not the host's own https on 443. Other routes,
 * and a host listed twice, are skipped and counted on stderr. Every flag is checked before the
 * proxy is asked.
 */
export async function sshConfigFromRoutes(
  argument: string,
  given: SshConfigValues,
  runtime: Runtime,
  inherited: ReadonlySet<string> = new Set(),
  proxyOnCommandLine = given.pomeriumUrl !== undefined,
): Promise<string> {
  if (given.host !== undefined) throw new UsageError(text.conflictingFlags('--from-routes', '--host'), { hint: text.fromRoutesHostHint });
  if (proxyOnCommandLine) throw new UsageError(text.conflictingFlags('--from-routes', '--pomerium-url'), { hint: text.fromRoutesProxyHint });
  const proxy = parseProxyOrigin(argument, 'proxy');
  const shown = `--from-routes ${proxy.origin}`;
  // A pomerium-url from the environment or a config file would send a written "burrow tcp
  // host:22" elsewhere: every block then names the proxy itself.
  const defaulted = given.pomeriumUrl !== undefined;
  const own = new Set([...inherited].filter((name) => name !== 'pomeriumUrl'));
  // A block for a stand-in host checks every flag now, before any sign-in.
  sshConfigBlock('routes.invalid', { ...given, pomeriumUrl: proxy.origin }, runtime, { shown, inherited: own });
  const values = { ...defaultValues('ssh-config'), ...given } as SshConfigValues & ProxyAccessValues;
  const logger = commandLogger({}, runtime, 'info');
  const access = proxyAccess(proxy, values, runtime, logger, serviceAccountToken(values, runtime.env));
  const stop = new AbortController();
  const off = runtime.onSignal(() => stop.abort());
  let routes;
  try {
    routes = await routesSignedIn(access, stop.signal);
  } finally {
    off();
  }
  const blocks: string[] = [];
  const written = new Set<string>();
  for (const route of routes) {
    const host = sshHostOf(route);
    if (host === undefined || written.has(host.name)) continue;
    try {
      const pomeriumUrl = host.proxy === proxy.origin && !defaulted ? undefined : proxy.origin;
      blocks.push(sshConfigBlock(host.name, { ...given, pomeriumUrl }, runtime, { shown, inherited: own }));
      written.add(host.name);
    } catch (error) {
      // A host no Host line can name (an IPv6 literal): skipped like the others.
      if (!(error instanceof UsageError)) throw error;
    }
  }
  if (blocks.length === 0) logger.info(text.routesNoSsh(proxy.origin));
  if (blocks.length < routes.length) logger.info(text.routesSshSkipped(routes.length - blocks.length, routes.length, proxy.origin));
  return blocks.join('\n');
}

/** The host of a `tcp+https://host:22` route and the proxy its `from` implies, else undefined. */
function sshHostOf(route: PortalRoute): { name: string; proxy: string } | undefined {
  if (route.type !== 'tcp' || !/^tcp\+https:\/\//i.test(route.from)) return undefined;
  try {
    const target = parseTarget(route.from);
    return target.destination.port === 22 ? { name: target.destination.host, proxy: target.proxy.origin } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The `burrow tcp` flags for `values`, generically from the flag table: each flag ssh-config
 * passes on whose value is not its default, as the table says (flags.ts, {@link PassOn}), but
 * those in `inherited` (what the written command finds by itself).
 * `burrow k8s kubeconfig` passes its flags on to the exec-credential it writes the same way.
 */
export function passedOn(values: Record<string, unknown>, command: CommandName = 'ssh-config', inherited: ReadonlySet<string> = new Set()): string[] {
  const args: string[] = [];
  for (const entry of flagsOf(command)) {
    if (entry.passOn === false) continue;
    const option = optionOf(entry, command);
    if (inherited.has(option.attributeName())) continue;
    const flag = option.long!;
    const value = values[option.attributeName()];
    if (option.negate) {
      if (value === false) args.push(flag);
    } else if (!option.required && !option.optional) {
      if (value === true) args.push(flag);
    } else {
      const given = Array.isArray(value) ? (value as string[]) : typeof value === 'string' ? [value] : [];
      for (const raw of given) {
        if (raw.trim() === entry.default) continue;
        const written = entry.passOn === 'value' ? raw : entry.passOn === 'path' ? resolve(raw) : entry.passOn(raw);
        if (/[\r\n]/.test(written)) throw new UsageError(text.sshConfigLineBreak(flag), { hint: text.sshConfigLineBreakHint });
        args.push(flag, written);
      }
    }
  }
  return args;
}
