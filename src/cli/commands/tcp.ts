/**
 * `burrow tcp <destination>`: a local listener (or stdin/stdout) whose every connection becomes a
 * tunnel through the identity-aware proxy. The drop-in for `pomerium-cli tcp`.
 */
import type { Command } from 'commander';
import { ExitCode } from '../../errors.js';
import { listenTcp, type TcpListener } from '../../listen/tcp.js';
import { stdioConnection } from '../../listen/stdio.js';
import { text } from '../../output/messages.js';
import { isLoopback, type Target } from '../../target.js';
import type { ProxyAccess } from '../../tunnel/access.js';
import type { SessionLimits } from '../../tunnel/limits.js';
import { serve } from '../../tunnel/serve.js';
import { runSession, type SessionOptions } from '../../tunnel/session.js';
import type { Transport } from '../../tunnel/transport.js';
import { createTransport, type TransportChoice } from '../../tunnel/transports.js';
import { parseTarget } from '../destination.js';
import { addFlags } from '../flags.js';
import { parseListen, type ListenAddress } from '../listen-address.js';
import { pingInterval, serviceAccountToken, sessionLimits, stallTimeout, type ServiceAccountValues, type SessionLimitValues } from '../options.js';
import { announceRoute, commandLogger, type LogValues, proxyAccess, type ProxyAccessValues } from '../proxy-access.js';
import type { Runtime } from '../runtime.js';
import type { CredentialsPool } from '../sign-in.js';

export interface TcpOptionValues extends ProxyAccessValues, ServiceAccountValues, SessionLimitValues, LogValues {
  listen: string;
  pomeriumUrl?: string;
  transport: TransportChoice;
  pingInterval: string;
  header: string[];
}

/** Everything the tcp command needs, validated: built once, passed down (no globals). */
export interface TcpSettings {
  target: Target;
  listen: ListenAddress;
  access: ProxyAccess;
  transport: Transport;
  limits: SessionLimits | undefined;
  /** `--stall-timeout` in ms; 0 = off. */
  stallTimeoutMs: number;
}

const EXAMPLES = `
Examples:
  # listen on 127.0.0.1:2202, then: git clone ssh://git@127.0.0.1:2202/group/project
  $ burrow tcp git.corp.example.com:22 --listen :2202

  # as an ssh ProxyCommand (~/.ssh/config):
  #   Host git.corp.example.com
  #     ProxyCommand burrow tcp --listen - %h:%p
  $ ssh -o ProxyCommand='burrow tcp --listen - %h:%p' git@git.corp.example.com

  # the proxy is on another host or port than the destination
  $ burrow tcp tcp+https://proxy.corp.example.com:8443/db.internal:5432
  $ burrow tcp db.internal:5432 --pomerium-url https://proxy.corp.example.com:8443

  # no browser on this machine: print the sign-in address, paste back where it ends
  $ burrow tcp git.corp.example.com:22 --listen :2202 --no-browser

  # a gateway that passes WebSocket upgrades but not CONNECT (e.g. websockify)
  $ burrow tcp wss://gateway.corp.example.com/ssh --listen :2202

  # close every tunnel after 8 hours, and when the sign-in it used expires
  $ burrow tcp git.corp.example.com:22 --listen :2202 --max-duration 8h --close-on-token-expiry

  # a service account token instead of a browser sign-in
  $ BURROW_SERVICE_ACCOUNT="$(cat token.jwt)" burrow tcp redis.corp.example.com:6379 --listen :6379
`;

export function registerTcp(program: Command, runtime: Runtime): void {
  const command = program
    .command('tcp')
    .summary('tunnel TCP (ssh, git, databases) through the identity-aware proxy')
    .description('Open a local listener (or use stdin/stdout) whose connections are tunnelled through the proxy to <destination>.')
    .argument('<destination>', 'host:port | tcp+https://host:port | tcp+https://proxy[:port]/host:port | wss://host[:port]/path');
  addFlags(command, 'tcp');
  command.addHelpText('after', EXAMPLES);
  command.action(async (destination: string, values: TcpOptionValues) => {
    runtime.setExitCode(await runTcp(destination, values, runtime));
  });
}

/** Where a tunnel command runs: alone, or as one named tunnel of `burrow up` sharing its sign-ins. */
export interface TunnelContext {
  /** The tunnel's name in the config file: its lines and events say it. */
  tunnel?: string;
  pool?: CredentialsPool;
}

/** Validates `values` (commander's option values of `tcp`) and builds everything a tunnel needs. */
export function tcpSettings(destination: string, values: TcpOptionValues, runtime: Runtime, context: TunnelContext = {}): TcpSettings {
  const target = parseTarget(destination, values.pomeriumUrl);
  const listen = parseListen(values.listen);
  // Stdio mode runs under ssh, whose stderr the user sees: quiet unless asked (or --json).
  const logger = commandLogger(values, runtime, listen.kind === 'stdio' && !values.json ? 'warn' : 'info', context.tunnel);
  const limits = sessionLimits(values);
  const stallTimeoutMs = stallTimeout(values);
  const serviceAccount = serviceAccountToken(values, runtime.env);
  if (values.serviceAccount !== undefined) runtime.hideArguments();
  const access = proxyAccess(target.proxy, values, runtime, logger, serviceAccount, context.pool);
  const transport = createTransport(values.transport, target, destination, { ...access.route, pingIntervalMs: pingInterval(values.pingInterval) });
  announceRoute(access, values);
  return { target, listen, access, transport, limits, stallTimeoutMs };
}

export async function runTcp(destination: string, values: TcpOptionValues, runtime: Runtime): Promise<number> {
  const s = tcpSettings(destination, values, runtime);
  return s.listen.kind === 'stdio' ? runStdio(s, runtime) : runListener(s, s.listen, runtime);
}

function sessionOptions(s: TcpSettings, label: string): SessionOptions {
  const { tokens, logger } = s.access;
  return { target: s.target, transport: s.transport, tokens, logger, label, limits: s.limits, stallTimeoutMs: s.stallTimeoutMs };
}

/** Stdio mode: one tunnel; exit 0 on a clean close, the error's code otherwise. */
async function runStdio(s: TcpSettings, runtime: Runtime): Promise<number> {
  if (!s.transport.framesInJavaScript) runtime.forgoOptimizingCompiler();
  const stop = new AbortController();
  const offSignals = runtime.onSignal(() => stop.abort());
  const result = await runSession(stdioConnection(runtime.stdin, runtime.stdout), {
    ...sessionOptions(s, 'stdio'),
    signal: stop.signal,
    endOnRemoteEof: true,
  });
  offSignals();
  if (stop.signal.aborted) return ExitCode.interrupted;
  // The session reported the failure (a failed or closed event).
  return result.error ? result.error.exitCode : ExitCode.ok;
}

/** Listener mode: a session per connection until SIGINT/SIGTERM, then close everything. */
async function runListener(s: TcpSettings, listen: Extract<ListenAddress, { kind: 'tcp' }>, runtime: Runtime): Promise<number> {
  const listener = await listenTcp(listen.host, listen.port);
  const stop = new AbortController();
  // Signal handlers go in before the address is printed: whoever reads it may signal at once.
  const offSignals = runtime.onSignal(() => stop.abort());
  // The bound address on stdout, alone on its line, so scripts can use --listen :0.
  runtime.stdout.write(`${listener.address}\n`);
  await serveTcp(s, listener, stop.signal);
  offSignals();
  return ExitCode.ok;
}

/** Serves a bound listener (says so first): a session per connection until `signal`, then closes everything. */
export async function serveTcp(s: TcpSettings, listener: TcpListener, signal: AbortSignal): Promise<void> {
  const { logger } = s.access;
  logger.event({ event: 'listening', address: listener.address, dest: s.target.destination.authority, proxy: s.target.proxy.origin, transport: s.transport.name });
  if (!isLoopback(listener.host)) logger.warn(text.nonLoopbackWarning(listener.address));
  await serve(listener, (connection, conn, signal) => runSession(connection, { ...sessionOptions(s, connection.peer), conn, signal }), {
    signal,
    onRefused: (error) => logger.failure(error),
    onStop: (open) => logger.event({ event: 'shutdown', open }),
  });
}
