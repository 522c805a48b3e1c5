/**
 * Every flag of every command, declared once, as data: its spelling, help text, default and
 * choices, how its value is checked, which commands take it, how `ssh-config` passes it on to the
 * `burrow tcp` it writes into a ProxyCommand, and whether a config file may set it. Commands
 * register their options from here ({@link addFlags}), so `--help` and shell completion (read off
 * the commander program, completion/spec.ts) follow from this table too.
 *
 * A command lists its flags in table order: `tcp`'s order, with `ssh-config`'s own flags first.
 */
import { TRANSPORT_CHOICES } from '../tunnel/transports.js';
import { Command, Option } from 'commander';
import { parseForwardProxy } from '../net/proxy-env.js';
import { ROUTE_TYPES } from '../net/routes-api.js';
import { LOG_LEVELS } from '../output/log.js';
import { SERVICE_KINDS } from './service.js';
import type { CommandName } from './command-table.js';
import { parseProxyUrl } from './destination.js';
import { parseDomain } from './domains.js';
import { parseKubeName } from './kubernetes.js';
import { DEFAULT_LISTEN, DEFAULT_PROXY_LISTEN, parseListen } from './listen-address.js';
import {
  connectTimeout,
  DEFAULT_IDLE_TIMEOUT,
  DEFAULT_STALL_TIMEOUT,
  parseDuration,
  parseHeaders,
  parseControlPersist,
  parseHostPattern,
  parseServerAliveInterval,
  parseSshUser,
  pingInterval,
  serviceAccountToken,
  stallTimeout,
} from './options.js';
import { DEFAULT_LOGIN_TIMEOUT, signInSettings } from './sign-in.js';

/**
 * How `ssh-config` passes a flag on, when it was given a value other than its default:
 * - `false`: it does not (the flag is `ssh-config`'s own, or `ssh-config` refuses it).
 * - `'value'`: as given. A switch is passed when set, a negated one (`--no-browser`) when given,
 *   a repeatable one once per value.
 * - `'path'`: made absolute, since ssh runs the ProxyCommand from wherever ssh was started.
 * - a function: the value written instead (normalised, or made fit for a one-line ProxyCommand).
 */
export type PassOn = false | 'value' | 'path' | ((value: string) => string);

export interface FlagEntry {
  /** commander's spelling: `--listen <addr>`, `-v, --verbose`, `--no-browser`. */
  readonly flags: string;
  readonly description: string;
  /** Other wording for some commands (what the flag does there, or what is passed on). */
  readonly describedFor?: Partial<Record<CommandName, string>>;
  /** The default, as typed on the command line; `[]` for a repeatable flag. */
  readonly default?: string | readonly string[];
  /** Another default for some commands. */
  readonly defaultFor?: Partial<Record<CommandName, string>>;
  readonly choices?: readonly string[];
  /** May be given more than once; the values are kept in order. */
  readonly repeatable?: boolean;
  /**
   * Checks one value as the command using it will (a UsageError for a bad one), with the
   * functions of options.ts and friends that the commands' actions use. `ssh-config` runs these
   * on its values ({@link checkValues}), so a bad one fails now, not at every ssh. (tcp.ts and
   * login.ts still spell the ranges of --connect-timeout and --ping-interval out themselves.)
   */
  readonly parse?: (value: string) => unknown;
  readonly commands: readonly CommandName[];
  readonly passOn: PassOn;
  /**
   * The config file's `defaults:` may set it (config.ts): settings of the user or the machine,
   * not of one invocation (a destination, a listen address), never a secret itself (a token,
   * header values) nor a safety switch (--disable-tls-verification).
   */
  readonly configurable: boolean;
  /**
   * The environment variable that sets its default, above the config file and below the command
   * line (config.ts, {@link applyDefaults} in main.ts's preAction hook).
   */
  readonly env?: string;
}

/** kubectl's credential plugin, and the kubeconfig that runs it: they reach the proxy and sign in as login does. */
const K8S: readonly CommandName[] = ['k8s exec-credential', 'k8s kubeconfig'];
/** Commands that may sign in with a browser (ssh-config: that write the command that will). */
const SIGN_IN: readonly CommandName[] = ['tcp', 'udp', 'proxy', 'up', 'login', 'ssh-config', 'token', 'routes', ...K8S];
/** …and every command that may open a browser (logout: the proxy's sign-out page). */
const BROWSER: readonly CommandName[] = [...SIGN_IN, 'logout'];
/** …and every command that opens the credential store, including those that only read or forget sign-ins. */
const STORE: readonly CommandName[] = ['tcp', 'udp', 'proxy', 'up', 'login', 'logout', 'status', 'cache location', 'cache clear', 'ssh-config', 'token', 'routes', 'doctor', ...K8S, 'k8s flush-credentials'];
/** Commands that reach the proxy (TLS, forward proxy, --connect-timeout)… */
const REACH: readonly CommandName[] = ['tcp', 'udp', 'proxy', 'login', 'ssh-config', 'token', 'routes', 'doctor', ...K8S];
/** …and those that open tunnels, or write the command that will. */
const TUNNEL: readonly CommandName[] = ['tcp', 'ssh-config'];
/** …and every command that opens tunnels, UDP and `burrow proxy`'s included. */
const ANY_TUNNEL: readonly CommandName[] = ['tcp', 'udp', 'proxy', 'ssh-config'];

/** A PEM is several lines; a ProxyCommand is one. `--ca-cert` takes base64 of the PEM as well. */
function oneLineCaCert(value: string): string {
  const trimmed = value.trim();
  return trimmed.startsWith('-----BEGIN') ? Buffer.from(trimmed, 'utf8').toString('base64') : trimmed;
}

export const FLAGS: readonly FlagEntry[] = [
  // --- ssh-config's own ---------------------------------------------------------------------------
  {
    flags: '--host <pattern>',
    description: 'the ssh Host pattern, when the argument is a proxy URL or a destination (wss://…, tcp+https://proxy/host:port)',
    parse: parseHostPattern,
    commands: ['ssh-config'],
    passOn: false,
    configurable: false,
  },
  {
    flags: '--user <name>',
    description: 'add "User <name>" (git servers usually want git)',
    parse: parseSshUser,
    commands: ['ssh-config'],
    passOn: false,
    configurable: false,
  },
  {
    flags: '--server-alive-interval <seconds>',
    description: "ssh keepalive interval (0 = leave ssh's default)",
    default: '30',
    parse: parseServerAliveInterval,
    commands: ['ssh-config'],
    passOn: false,
    configurable: true,
  },
  {
    flags: '--multiplex',
    description: 'share one ssh connection, and so one tunnel and one burrow, between ssh sessions to a host (ControlMaster auto, a ControlPath in burrow\'s own directory, ControlPersist)',
    commands: ['ssh-config'],
    passOn: false,
    configurable: true,
  },
  {
    flags: '--control-persist <time>',
    description: 'with --multiplex: how long the shared connection stays open after its last session, in ssh\'s time format (default 10m; 1h, 90s, yes = until killed)',
    parse: parseControlPersist,
    commands: ['ssh-config'],
    passOn: false,
    configurable: true,
  },
  {
    flags: '--from-routes',
    description:
      'the argument is a proxy: write one Host block for each tcp+https://host:22 route its routes API lists for you (signing in if needed; others are skipped, with a count on stderr)',
    commands: ['ssh-config'],
    passOn: false,
    configurable: false,
  },

  // --- k8s kubeconfig's own -----------------------------------------------------------------------
  {
    flags: '--name <name>',
    description: 'the name of the cluster, user and context (default: the server\'s host[:port])',
    parse: parseKubeName,
    commands: ['k8s kubeconfig'],
    passOn: false,
    configurable: false,
  },

  // --- up's own -----------------------------------------------------------------------------------
  {
    flags: '--print-service <kind>',
    description: 'print a user service that runs "burrow up" at login (a systemd unit or a launchd agent) instead of running it',
    choices: SERVICE_KINDS,
    commands: ['up'],
    passOn: false,
    configurable: false,
  },

  // --- routes' own --------------------------------------------------------------------------------
  {
    flags: '--type <kind>',
    description: 'list only the routes of this type',
    choices: ROUTE_TYPES,
    commands: ['routes'],
    passOn: false,
    configurable: false,
  },

  // --- where and how to tunnel --------------------------------------------------------------------
  {
    flags: '--listen <addr>',
    description: 'local address: ":PORT" (loopback), "HOST:PORT", or "-" for stdin/stdout',
    describedFor: {
      udp: 'local UDP address: ":PORT" (loopback) or "HOST:PORT"',
      proxy: 'local address for HTTP CONNECT and SOCKS5 clients: ":PORT" (loopback) or "HOST:PORT"',
    },
    default: DEFAULT_LISTEN,
    defaultFor: { proxy: DEFAULT_PROXY_LISTEN },
    parse: parseListen,
    commands: ['tcp', 'udp', 'proxy'],
    // ssh-config always writes --listen -.
    passOn: false,
    configurable: false,
  },
  {
    flags: '--domain <domain>',
    description:
      'tunnel host:port requests for this name and every name under it, e.g. corp.example.com (repeatable); everything else is refused',
    default: [],
    repeatable: true,
    parse: parseDomain,
    commands: ['proxy'],
    passOn: false,
    configurable: true,
  },
  {
    flags: '--pomerium-url <url>',
    description: 'the proxy to use instead of the one derived from <destination> (env BURROW_POMERIUM_URL)',
    describedFor: {
      'ssh-config': 'pass --pomerium-url: the proxy, when it is not each host on port 443',
      proxy: 'the proxy for every destination, instead of https://<host>:443 for each',
    },
    parse: (value) => parseProxyUrl(value, '--pomerium-url'),
    commands: [...ANY_TUNNEL, 'doctor'],
    passOn: (value) => parseProxyUrl(value, '--pomerium-url').origin,
    // A user's own proxy, the same for every destination that does not name one: a default.
    configurable: true,
    env: 'BURROW_POMERIUM_URL',
  },
  {
    flags: '--connect-timeout <seconds>',
    description: 'give up opening a tunnel after this long',
    describedFor: {
      login: 'give up reaching the proxy after this long',
      token: 'give up reaching the proxy after this long',
      routes: 'give up reaching the proxy after this long',
      doctor: 'give up each step after this long',
      'k8s exec-credential': 'give up reaching the proxy after this long',
      'k8s kubeconfig': 'pass --connect-timeout: give up reaching the proxy after this long',
    },
    default: '30',
    parse: connectTimeout,
    commands: REACH,
    passOn: (value) => value.trim(),
    configurable: true,
  },
  {
    flags: '--stall-timeout <seconds>',
    description:
      'close a tunnel when data waiting for the proxy does not move, or nothing comes back after the local side finished, for this long (0 = off)',
    default: DEFAULT_STALL_TIMEOUT,
    parse: (value) => stallTimeout({ stallTimeout: value }),
    commands: [...TUNNEL, 'proxy'],
    passOn: (value) => value.trim(),
    configurable: true,
  },
  {
    flags: '--max-duration <time>',
    description: 'close each tunnel when it is this old, e.g. 90s, 30m, 8h (the proxy checks policy only when a tunnel opens)',
    parse: (value) => parseDuration('--max-duration', value),
    commands: ANY_TUNNEL,
    passOn: (value) => value.trim(),
    configurable: true,
  },
  {
    flags: '--close-on-token-expiry',
    description: 'close each tunnel when the token it was opened with expires',
    commands: ANY_TUNNEL,
    passOn: 'value',
    configurable: true,
  },
  {
    flags: '--idle-timeout <time>',
    description:
      'end a UDP session after this long without a datagram either way, e.g. 30s, 5m (a session whose peer sent one datagram, such as a DNS query, ends after 10s)',
    default: DEFAULT_IDLE_TIMEOUT,
    parse: (value) => parseDuration('--idle-timeout', value),
    commands: ['udp'],
    passOn: false,
    configurable: true,
  },
  {
    flags: '--transport <kind>',
    description: 'how to reach the destination: auto picks connect for host:port and tcp+https://, websocket for wss://',
    choices: TRANSPORT_CHOICES,
    default: 'auto',
    commands: [...TUNNEL, 'doctor'],
    passOn: 'value',
    configurable: false,
  },
  {
    flags: '--ping-interval <seconds>',
    description: 'WebSocket keepalive ping interval; the tunnel closes when pongs stop (0 = off)',
    default: '30',
    parse: pingInterval,
    commands: TUNNEL,
    passOn: (value) => value.trim(),
    configurable: true,
  },
  {
    flags: '--header <header>',
    description: 'add "Name: value" to the tunnel request (repeatable; for gateways with their own API keys)',
    describedFor: {
      'ssh-config': 'pass --header "Name: value" (repeatable); the value is written into the config, a plain-text file: keep it private',
    },
    default: [],
    repeatable: true,
    parse: (value) => parseHeaders([value]),
    commands: [...ANY_TUNNEL, 'doctor'],
    passOn: 'value',
    configurable: false,
  },
  {
    flags: '--proxy <url>',
    description: 'corporate forward proxy to reach the identity proxy through (default: HTTPS_PROXY / ALL_PROXY, minus NO_PROXY)',
    describedFor: {
      'ssh-config': "pass --proxy: the corporate forward proxy (default: HTTPS_PROXY / ALL_PROXY, minus NO_PROXY, in ssh's environment); a password in it is written into the config",
    },
    parse: (value) => parseForwardProxy(value, '--proxy'),
    commands: REACH,
    passOn: (value) => value.trim(),
    configurable: true,
  },
  {
    flags: '--no-proxy',
    description: 'reach the identity proxy directly, whatever HTTPS_PROXY says',
    commands: REACH,
    passOn: 'value',
    configurable: true,
  },

  // --- signing in ---------------------------------------------------------------------------------
  {
    // Before --no-browser, always: commander makes a lone --no-browser default `browser` to true,
    // but leaves it undefined when the positive flag was declared first. logout's `--browser`
    // must stay off unless given.
    flags: '--browser',
    description: "also open the proxy's sign-out page in the browser, to end its own browser session (needs <proxy-url>)",
    commands: ['logout'],
    passOn: false,
    configurable: false,
  },
  {
    flags: '--force',
    description: 'sign in again even when the cached sign-in still works',
    commands: ['login'],
    passOn: false,
    configurable: false,
  },
  {
    flags: '--check',
    description: 'ask the proxy whether the cached token is still good first, and sign in again if it is not',
    commands: ['token'],
    passOn: false,
    configurable: false,
  },
  {
    flags: '--browser-cmd <program>',
    description: 'run <program> <URL> to open the sign-in (or sign-out) page, instead of $BROWSER or the default browser',
    commands: BROWSER,
    passOn: 'value',
    configurable: true,
  },
  {
    flags: '--no-browser',
    description: 'do not open a browser: print the sign-in address (and accept the final address pasted back)',
    commands: BROWSER,
    passOn: 'value',
    configurable: true,
  },
  {
    flags: '--login-timeout <seconds>',
    description: 'how long to wait for a browser sign-in',
    default: DEFAULT_LOGIN_TIMEOUT,
    parse: (value) => signInSettings({ loginTimeout: value }),
    commands: SIGN_IN,
    passOn: (value) => value.trim(),
    configurable: true,
  },
  {
    flags: '--credential-store <kind>',
    description: 'where to keep sign-ins (default: keychain if usable, else files; env BURROW_CREDENTIAL_STORE)',
    choices: ['keychain', 'file'],
    commands: STORE,
    passOn: 'value',
    configurable: true,
    env: 'BURROW_CREDENTIAL_STORE',
  },
  {
    flags: '--service-account <jwt>',
    description: 'a service account token (visible to other local users in the process list: prefer the file or env var)',
    commands: ['tcp', 'udp', 'proxy'],
    // A token is never written into an ssh config: ssh-config takes --service-account-file.
    passOn: false,
    configurable: false,
  },
  {
    flags: '--service-account-file <path>',
    description: 'read the service account token from this file (or set BURROW_SERVICE_ACCOUNT)',
    describedFor: {
      'ssh-config': 'pass --service-account-file (never a token itself: the config is a plain file)',
      'k8s kubeconfig': 'pass --service-account-file (never a token itself: the kubeconfig is a plain file)',
    },
    parse: (value) => serviceAccountToken({ serviceAccountFile: value }, {}),
    commands: [...ANY_TUNNEL, 'token', 'routes', 'doctor', ...K8S],
    passOn: 'path',
    configurable: true,
  },

  // --- TLS ----------------------------------------------------------------------------------------
  {
    flags: '--disable-tls-verification',
    description: "do not verify the proxy's TLS certificate (insecure; for testing)",
    commands: REACH,
    passOn: 'value',
    configurable: false,
  },
  {
    flags: '--alternate-ca-path <pem>',
    description: 'also trust the CA certificate(s) in this PEM file',
    commands: REACH,
    passOn: 'path',
    configurable: true,
  },
  {
    flags: '--ca-cert <pem-or-base64>',
    description: 'also trust this CA certificate (PEM text or base64 of it)',
    commands: REACH,
    passOn: oneLineCaCert,
    configurable: true,
  },
  {
    flags: '--client-cert <pem>',
    description: 'client certificate for proxies that require mutual TLS',
    commands: REACH,
    passOn: 'path',
    configurable: true,
  },
  {
    flags: '--client-key <pem>',
    description: 'private key of --client-cert',
    commands: REACH,
    passOn: 'path',
    configurable: true,
  },

  // --- what to say --------------------------------------------------------------------------------
  {
    flags: '-v, --verbose',
    description: "say more on stderr: every connection's steps (same as --log-level debug)",
    commands: ['tcp', 'udp', 'proxy', 'up', 'login', 'k8s exec-credential'],
    passOn: false,
    configurable: false,
  },
  {
    flags: '--log-level <level>',
    description: 'how much to print on stderr (env BURROW_LOG_LEVEL)',
    choices: LOG_LEVELS,
    commands: ['tcp', 'udp', 'proxy', 'up', 'login', 'k8s exec-credential'],
    passOn: false,
    configurable: true,
    env: 'BURROW_LOG_LEVEL',
  },
  {
    flags: '--json',
    description: 'write events and errors on stderr as JSON lines, for tools (fields: docs/json-events.md)',
    describedFor: {
      status: 'print the sign-ins as JSON on stdout (warnings and errors as JSON lines on stderr)',
      logout: 'print what was forgotten as JSON on stdout (warnings and errors as JSON lines on stderr)',
      'cache location': 'print the locations as JSON on stdout',
      'cache clear': 'print what was forgotten as JSON on stdout (warnings and errors as JSON lines on stderr)',
      doctor: 'print the steps as one JSON document on stdout, for a support ticket (warnings and errors as JSON lines on stderr)',
      routes: 'print the routes as a JSON array on stdout, each object as the proxy sent it (warnings and errors as JSON lines on stderr)',
      'k8s flush-credentials': 'print what was forgotten as JSON on stdout (warnings and errors as JSON lines on stderr)',
      'config show': 'print the defaults and tunnels as JSON on stdout',
    },
    commands: ['tcp', 'udp', 'proxy', 'up', 'login', 'logout', 'status', 'cache location', 'cache clear', 'routes', 'doctor', 'k8s flush-credentials', 'config show'],
    passOn: false,
    configurable: false,
  },
];

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** The table's entries for `command`, in order. */
export function flagsOf(command: CommandName): FlagEntry[] {
  return FLAGS.filter((entry) => entry.commands.includes(command));
}

/** The commander option of `entry` as `command` registers it. */
export function optionOf(entry: FlagEntry, command: CommandName): Option {
  const option = new Option(entry.flags, entry.describedFor?.[command] ?? entry.description);
  if (entry.choices) option.choices(entry.choices);
  if (entry.repeatable) option.argParser(collect);
  const value = entry.defaultFor?.[command] ?? entry.default;
  if (value !== undefined) option.default(typeof value === 'string' ? value : [...value]);
  return option;
}

/** Registers every flag `name` takes, in table order. */
export function addFlags(command: Command, name: CommandName): Command {
  for (const entry of flagsOf(name)) command.addOption(optionOf(entry, name));
  return command;
}

/** The option values `name` starts from before any flag is read: the defaults, as commander sets them. */
export function defaultValues(name: CommandName): Record<string, unknown> {
  return { ...addFlags(new Command(), name).opts() };
}

/**
 * Runs the table's check on each value in `values` (commander's option values of `name`) that
 * has one: the first bad value throws its UsageError.
 */
export function checkValues(name: CommandName, values: Record<string, unknown>): void {
  for (const entry of flagsOf(name)) {
    if (!entry.parse) continue;
    const value = values[optionOf(entry, name).attributeName()];
    for (const one of Array.isArray(value) ? value : [value]) if (typeof one === 'string') entry.parse(one);
  }
}
