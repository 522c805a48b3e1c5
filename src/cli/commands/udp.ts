/**
 * `burrow udp <destination>`: a local UDP socket whose every peer (source address) gets a
 * CONNECT-UDP tunnel through the identity-aware proxy. The counterpart of `pomerium-cli udp`.
 */
import type { Command } from 'commander';
import { ExitCode, UsageError } from '../../errors.js';
import { listenUdp, type UdpListener } from '../../listen/udp.js';
import { text } from '../../output/messages.js';
import { ConnectUdpTransport } from '../../tunnel/connect-udp.js';
import { relayUdp } from '../../tunnel/udp-relay.js';
import { parseTarget } from '../destination.js';
import { addFlags } from '../flags.js';
import { type ListenAddress, parseListen } from '../listen-address.js';
import { parseDuration, serviceAccountToken, sessionLimits, type ServiceAccountValues, type SessionLimitValues } from '../options.js';
import { announceRoute, commandLogger, type LogValues, proxyAccess, type ProxyAccessValues } from '../proxy-access.js';
import type { Runtime } from '../runtime.js';
import type { Target } from '../../target.js';
import type { ProxyAccess } from '../../tunnel/access.js';
import type { SessionLimits } from '../../tunnel/limits.js';
import type { TunnelContext } from './tcp.js';

export interface UdpOptionValues extends ProxyAccessValues, ServiceAccountValues, SessionLimitValues, LogValues {
  listen: string;
  pomeriumUrl?: string;
  idleTimeout: string;
  header: string[];
}

const EXAMPLES = `
Examples:
  # a DNS server behind the proxy, on 127.0.0.1:5353; then: dig @127.0.0.1 -p 5353 intranet.corp
  $ burrow udp dns.corp.example.com:53 --listen :5353

  # the proxy is on another host or port than the destination
  $ burrow udp udp+https://proxy.corp.example.com:8443/syslog.internal:514 --listen :5514
  $ burrow udp ntp.internal:123 --pomerium-url https://proxy.corp.example.com --listen :1123

  # a WireGuard endpoint, its sessions kept for 10 minutes of silence
  $ burrow udp udp+https://vpn.corp.example.com:51820 --listen :51820 --idle-timeout 10m
`;

export function registerUdp(program: Command, runtime: Runtime): void {
  const command = program
    .command('udp')
    .summary('relay UDP (DNS, syslog, NTP, WireGuard) through the identity-aware proxy')
    .description(
      'Open a local UDP socket; each local peer (source address) gets its own tunnel through the proxy to <destination> (CONNECT-UDP), and the replies go back to it.',
    )
    .argument('<destination>', 'host:port | udp+https://host:port | udp+https://proxy[:port]/host:port');
  addFlags(command, 'udp');
  command.addHelpText('after', EXAMPLES);
  command.action(async (destination: string, values: UdpOptionValues) => {
    runtime.setExitCode(await runUdp(destination, values, runtime));
  });
}

/** Everything a UDP relay needs, validated: built once, passed down. */
export interface UdpSettings {
  target: Target;
  listen: Extract<ListenAddress, { kind: 'tcp' }>;
  access: ProxyAccess;
  transport: ConnectUdpTransport;
  idleTimeoutMs: number;
  limits: SessionLimits | undefined;
}

/** Validates `values` (commander's option values of `udp`) and builds everything the relay needs. */
export function udpSettings(destination: string, values: UdpOptionValues, runtime: Runtime, context: TunnelContext = {}): UdpSettings {
  const target = parseTarget(destination, values.pomeriumUrl, 'udp');
  const listen = parseListen(values.listen);
  if (listen.kind === 'stdio') throw new UsageError(text.udpNoStdio, { code: 'BURROW_INVALID_LISTEN', hint: text.udpNoStdioHint });
  const idleTimeoutMs = parseDuration('--idle-timeout', values.idleTimeout);
  const limits = sessionLimits(values);
  const logger = commandLogger(values, runtime, 'info', context.tunnel);
  const serviceAccount = serviceAccountToken(values, runtime.env);
  if (values.serviceAccount !== undefined) runtime.hideArguments();
  const access = proxyAccess(target.proxy, values, runtime, logger, serviceAccount, context.pool);
  const transport = new ConnectUdpTransport(access.route);
  announceRoute(access, values);
  return { target, listen, access, transport, idleTimeoutMs, limits };
}

export async function runUdp(destination: string, values: UdpOptionValues, runtime: Runtime): Promise<number> {
  const s = udpSettings(destination, values, runtime);
  const listener = await listenUdp(s.listen.host, s.listen.port);
  const stop = new AbortController();
  // Signal handlers go in before the address is printed: whoever reads it may signal at once.
  const offSignals = runtime.onSignal(() => stop.abort());
  // The bound address on stdout, alone on its line, so scripts can use --listen :0.
  runtime.stdout.write(`${listener.address}\n`);
  await serveUdp(s, listener, stop.signal);
  offSignals();
  return ExitCode.ok;
}

/** Relays a bound socket (says so first) until `signal`, then ends every session. */
export async function serveUdp(s: UdpSettings, listener: UdpListener, signal: AbortSignal): Promise<void> {
  const { logger, tokens } = s.access;
  logger.event({ event: 'listening', address: listener.address, dest: s.target.destination.authority, proxy: s.target.proxy.origin, transport: s.transport.name });
  if (!s.listen.loopback) logger.warn(text.nonLoopbackWarning(listener.address));
  await relayUdp(listener, { target: s.target, transport: s.transport, tokens, logger, idleTimeoutMs: s.idleTimeoutMs, limits: s.limits, signal });
}
