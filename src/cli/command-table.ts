/**
 * The commands that take flags from the flag table (flags.ts), by their path under `burrow`, and
 * what else is known of each one as data. No imports: loader.ts reads it before the bundle loads.
 * test/unit/flags.test.ts checks every name here against the commander program.
 */
export const COMMANDS = {
  /** Opens tunnels: its code cache is the one worth keeping (loader.ts). */
  tcp: { tunnels: true },
  /** Relays UDP datagrams: a long-running command like tcp. */
  udp: { tunnels: true },
  /** A local HTTP CONNECT and SOCKS5 proxy: a tunnel per request, long-running like tcp. */
  proxy: { tunnels: true },
  /** Every tunnel of the config file in one process: long-running like tcp. */
  up: { tunnels: true },
  login: { tunnels: false },
  logout: { tunnels: false },
  status: { tunnels: false },
  'cache location': { tunnels: false },
  'cache clear': { tunnels: false },
  'ssh-config': { tunnels: false },
  token: { tunnels: false },
  routes: { tunnels: false },
  doctor: { tunnels: false },
  'k8s exec-credential': { tunnels: false },
  'k8s flush-credentials': { tunnels: false },
  'k8s kubeconfig': { tunnels: false },
  'config show': { tunnels: false },
} as const satisfies Record<string, { tunnels: boolean }>;

export type CommandName = keyof typeof COMMANDS;

/** The commands that open tunnels (`burrow <name> …`). */
export const TUNNEL_COMMANDS: ReadonlySet<string> = new Set(
  Object.entries(COMMANDS)
    .filter(([, command]) => command.tunnels)
    .map(([name]) => name),
);
