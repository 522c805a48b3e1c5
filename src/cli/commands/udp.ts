/**
 * `burrow udp <destination>`: a local UDP socket whose every peer (source address) gets a
 * CONNECT-UDP tunnel through the identity-aware proxy. The counterpart of `pomerium-cli udp`.
 */
import type { Command } from 'commander';
import { ExitCode, UsageError } from '../../errors.js';
import { listenUdp } from '../../listen/udp.js';
import { text } from '../../output/messages.js';
import { ConnectUdpTransport } from '../../tunnel/connect-udp.js';
import { relayUdp } from '../../tunnel/udp-relay.js';
import { parseTarget } from '../destination.js';
import { addFlags } from '../flags.js';
import { parseListen } from '../listen-address.js';
import { parseDuration, serviceAccountToken, sessionLimits, type ServiceAccountValues, type SessionLimitValues } from '../options.js';
import { announceRoute, commandLogger, type LogValues, proxyAccess, type ProxyAccessValues } from '../proxy-access.js';
import type { Runtime } from '../runtime.js';

interface UdpOptionValues extends ProxyAccessValues, ServiceAccountValues, SessionLimitValues, LogValues {
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

export async function runUdp(destination: string, values: UdpOptionValues, runtime: Runtime): Promise<number> {
  const target = parseTarget(destination, values.pomeriumUrl, 'udp');
  const listen = parseListen(values.listen);
  if (listen.kind === 'stdio') throw new UsageError(text.udpNoStdio, { code: 'BURROW_INVALID_LISTEN', hint: text.udpNoStdioHint });
  const idleTimeoutMs = parseDuration('--idle-timeout', values.idleTimeout);
  const limits = sessionLimits(values);
  const logger = commandLogger(values, runtime, 'info');
  const serviceAccount = serviceAccountToken(values, runtime.env);
  if (values.serviceAccount !== undefined) runtime.hideArguments();
  const access = proxyAccess(target.proxy, values, runtime, logger, serviceAccount);
  const transport = new ConnectUdpTransport(access.route);
  announceRoute(access, values);

  const listener = await listenUdp(listen.host, listen.port);
  const stop = new AbortController();
  // Signal handlers go in before the address is printed: whoever reads it may signal at once.
  const offSignals = runtime.onSignal(() => stop.abort());
  // The bound address on stdout, alone on its line, so scripts can use --listen :0.
  runtime.stdout.write(`${listener.address}\n`);
  logger.event({ event: 'listening', address: listener.address, dest: target.destination.authority, proxy: target.proxy.origin, transport: transport.name });
  if (!listen.loopback) logger.warn(text.nonLoopbackWarning(listener.address));
  await relayUdp(listener, { target, transport, tokens: access.tokens, logger, idleTimeoutMs, limits, signal: stop.signal });
  offSignals();
  return ExitCode.ok;
}
