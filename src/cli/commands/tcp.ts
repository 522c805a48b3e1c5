/**
 * `burrow tcp <destination>`: a local listener (or stdin/stdout) whose every connection becomes a
 * tunnel through the identity-aware proxy. The drop-in for `pomerium-cli tcp`.
 */
import { setMaxListeners } from 'node:events';
import type { Command } from 'commander';
import { ExitCode, ListenError } from '../../errors.js';
import { type ForwardProxy, forwardProxyFor, type ProxySettingValues } from '../../net/proxy-env.js';
import { buildTls, type TlsFlags, type TlsSettings } from '../../net/tls.js';
import { createLogger, type LogLevel, type Logger } from '../../output/log.js';
import { text } from '../../output/messages.js';
import { listenTcp } from '../../listen/tcp.js';
import { stdioConnection } from '../../listen/stdio.js';
import { UsageError } from '../../errors.js';
import { ConnectTransport } from '../../tunnel/connect.js';
import { WebSocketTransport } from '../../tunnel/websocket.js';
import type { SessionLimits } from '../../tunnel/limits.js';
import { runSession, type SessionOptions, type TokenSource } from '../../tunnel/session.js';
import type { Transport } from '../../tunnel/transport.js';
import { isLoopback, parseTarget, type Target } from '../destination.js';
import { addFlags } from '../flags.js';
import { parseListen, type ListenAddress } from '../listen-address.js';
import { createCredentials, signInSettings, type SignInValues } from '../sign-in.js';
import {
  logLevel,
  parseHeaders,
  parseSeconds,
  serviceAccountToken,
  sessionLimits,
  stallTimeout,
  type ServiceAccountValues,
  type SessionLimitValues,
} from '../options.js';
import type { Runtime } from '../runtime.js';

interface TcpOptionValues extends TlsFlags, ServiceAccountValues, SignInValues, ProxySettingValues, SessionLimitValues {
  listen: string;
  pomeriumUrl?: string;
  connectTimeout: string;
  transport: 'auto' | 'connect' | 'websocket';
  pingInterval: string;
  header: string[];
  verbose?: boolean;
  logLevel?: LogLevel;
  json?: boolean;
}

/** Everything the tcp command needs, validated: built once, passed down (no globals). */
export interface TcpSettings {
  target: Target;
  listen: ListenAddress;
  transport: Transport;
  tokens: TokenSource;
  logger: Logger;
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

function settings(destination: string, values: TcpOptionValues, runtime: Runtime): TcpSettings {
  const target = parseTarget(destination, values.pomeriumUrl);
  const listen = parseListen(values.listen);
  // Stdio mode runs under ssh, whose stderr the user sees: quiet unless asked (or --json).
  const logger = createLogger({ level: logLevel(values, listen.kind === 'stdio' && !values.json ? 'warn' : 'info'), json: values.json });
  const connectTimeoutMs = parseSeconds('--connect-timeout', values.connectTimeout, { min: 0.1, max: 3600 });
  const limits = sessionLimits(values);
  const stallTimeoutMs = stallTimeout(values);
  const serviceAccount = serviceAccountToken(values, runtime.env);
  if (values.serviceAccount !== undefined) runtime.hideArguments();
  const signIn = signInSettings(values);
  const forward = forwardProxyFor(target.proxy, values, runtime.env);
  // TLS settings also serve an https:// forward proxy in front of a plain-http identity proxy.
  const tls = target.proxy.scheme === 'https' || forward?.scheme === 'https' ? buildTls(values, runtime.env) : undefined;
  const transport = chooseTransport(destination, target, values, { tls, forward, connectTimeoutMs, userAgent: `burrow/${runtime.version}` });
  // Every flag is validated before anything is logged: a usage error stays the only line.
  if (forward) logger.debug(`reaching ${target.proxy.origin} through forward proxy ${forward.origin}`);
  if (values.disableTlsVerification) logger.warn(text.tlsDisabledWarning);
  if (target.proxy.scheme === 'http' && !isLoopback(target.proxy.host)) logger.warn(text.plainHttpWarning(target.proxy.origin));
  return {
    target,
    listen,
    logger,
    limits,
    stallTimeoutMs,
    transport,
    tokens: createCredentials({ serviceAccount, settings: signIn, tls, forward, connectTimeoutMs, runtime, logger }),
  };
}

/** `auto` follows the destination: wss:// and ws:// upgrade, everything else CONNECTs. */
function chooseTransport(
  input: string,
  target: Target,
  values: TcpOptionValues,
  common: { tls: TlsSettings | undefined; forward: ForwardProxy | undefined; connectTimeoutMs: number; userAgent: string },
): Transport {
  const wanted = values.transport === 'auto' ? (target.websocket ? 'websocket' : 'connect') : values.transport;
  if ((wanted === 'websocket') !== (target.websocket !== undefined)) {
    throw new UsageError(text.transportMismatch(wanted, input), { hint: text.transportMismatchHint });
  }
  const headers = parseHeaders(values.header);
  const pingIntervalMs = values.pingInterval === '0' ? 0 : parseSeconds('--ping-interval', values.pingInterval, { min: 0.05, max: 3600 });
  return wanted === 'websocket'
    ? new WebSocketTransport({ ...common, headers, pingIntervalMs })
    : new ConnectTransport({ ...common, headers });
}

export async function runTcp(destination: string, values: TcpOptionValues, runtime: Runtime): Promise<number> {
  const s = settings(destination, values, runtime);
  return s.listen.kind === 'stdio' ? runStdio(s, runtime) : runListener(s, s.listen, runtime);
}

/** Stdio mode: one tunnel; exit 0 on a clean close, the error's code otherwise. */
async function runStdio(s: TcpSettings, runtime: Runtime): Promise<number> {
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

function sessionOptions(s: TcpSettings, label: string): SessionOptions {
  return { target: s.target, transport: s.transport, tokens: s.tokens, logger: s.logger, label, limits: s.limits, stallTimeoutMs: s.stallTimeoutMs };
}

/** Listener mode: a session per connection until SIGINT/SIGTERM, then close everything. */
async function runListener(s: TcpSettings, listen: Extract<ListenAddress, { kind: 'tcp' }>, runtime: Runtime): Promise<number> {
  // At most one line a second about refused connections: at the fd limit every one fails alike.
  let lastRefusal = 0;
  const quiet = (): boolean => {
    const now = Date.now();
    if (now - lastRefusal < 1000) return true;
    lastRefusal = now;
    return false;
  };
  const listener = await listenTcp(listen.host, listen.port, {
    onAcceptError: (error) => {
      if (quiet()) return;
      const tooMany = error.code === 'EMFILE' || error.code === 'ENFILE';
      const reason = tooMany ? 'too many open files' : (error.code ?? error.message);
      s.logger.failure(new ListenError(text.acceptFailed(listener.address, reason), { hint: tooMany ? text.tooManyFilesHint : text.listenGenericHint, cause: error }));
    },
    onFull: (peer, capacity) => {
      if (quiet()) return;
      s.logger.failure(new ListenError(text.listenerFull(peer, capacity.tunnels, capacity.limit), { hint: text.tooManyFilesHint }));
    },
  });
  const stop = new AbortController();
  // Every open tunnel listens for shutdown on this one signal: no "possible leak" warning at 11.
  setMaxListeners(0, stop.signal);
  const open = new Set<Promise<void>>();
  // Signal handlers go in before the address is printed: whoever reads it may signal at once.
  const offSignals = runtime.onSignal(() => {
    s.logger.event({ event: 'shutdown', open: open.size });
    stop.abort();
    void listener.close();
  });
  const dest = s.target.destination.authority;
  // The bound address on stdout, alone on its line, so scripts can use --listen :0.
  runtime.stdout.write(`${listener.address}\n`);
  s.logger.event({ event: 'listening', address: listener.address, dest, proxy: s.target.proxy.origin, transport: s.transport.name });
  if (!listen.loopback) s.logger.warn(text.nonLoopbackWarning(listener.address));

  let conn = 0;
  for await (const connection of listener.connections()) {
    // Each session reports its own events, failures included; the listener keeps serving.
    const session = runSession(connection, { ...sessionOptions(s, connection.peer), conn: ++conn, signal: stop.signal }).then(() => {});
    open.add(session);
    void session.finally(() => open.delete(session));
  }
  await Promise.all(open);
  offSignals();
  return ExitCode.ok;
}
