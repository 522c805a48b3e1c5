/**
 * `burrow proxy --domain D…`: one loopback port that speaks HTTP CONNECT and SOCKS5 (and
 * SOCKS4/4a), for tools that take a proxy setting (curl, ncat, ssh's ProxyCommand, browsers).
 * A request for `host:port` under a `--domain` gets the tunnel `burrow tcp host:port` would open
 * (same proxy derivation or `--pomerium-url`, same sign-in, same session); anything else is
 * refused without contacting anyone. The client hears success only once the tunnel is open.
 *
 * pomerium-cli has a hidden `proxy` command that passes every other destination straight
 * through, matches domains without a dot boundary and answers 200 before the tunnel exists;
 * this one does the opposite of each: it is not an open proxy.
 */
import { isIP, type Socket } from 'node:net';
import type { Command } from 'commander';
import { ExitCode, ProxyRequestError, type BurrowError, UsageError } from '../../errors.js';
import type { LocalConnection } from '../../listen/connection.js';
import { answerFor, answerText, closeWith, failureReply, type ProxyProtocol, readRequest, successReply } from '../../listen/proxy-request.js';
import { listenTcp } from '../../listen/tcp.js';
import { text } from '../../output/messages.js';
import { failureFields } from '../../output/events.js';
import { formatAuthority, type ProxyEndpoint, proxyEndpoint } from '../../target.js';
import type { ProxyAccess } from '../../tunnel/access.js';
import { serve } from '../../tunnel/serve.js';
import { runSession } from '../../tunnel/session.js';
import type { Transport } from '../../tunnel/transport.js';
import { createTransport } from '../../tunnel/transports.js';
import { parseProxyUrl, parseTarget, splitHostPort } from '../destination.js';
import { parseDomains, underDomain } from '../domains.js';
import { addFlags } from '../flags.js';
import { parseListen } from '../listen-address.js';
import { serviceAccountToken, sessionLimits, stallTimeout, type ServiceAccountValues, type SessionLimitValues } from '../options.js';
import { announceRoute, commandLogger, type LogValues, proxyAccess, type ProxyAccessValues } from '../proxy-access.js';
import type { Runtime } from '../runtime.js';

interface ProxyOptionValues extends ProxyAccessValues, ServiceAccountValues, SessionLimitValues, LogValues {
  listen: string;
  domain: string[];
  pomeriumUrl?: string;
  header: string[];
}

/** A client's whole request (SOCKS greeting included) must arrive within this long of connecting. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * Proxies kept ready (route options, token source, transport), by origin. With --pomerium-url
 * there is one; without, each host is its own proxy: the oldest is dropped beyond this many (a
 * later tunnel to it builds it again and finds its sign-in in the store).
 */
const KEPT_PROXIES = 64;

/** Characters of a client's destination shown in a line. */
const SHOWN_DEST = 100;

const EXAMPLES = `
Examples:
  # every name under corp.example.com, through the proxy on port 443 of each host
  $ burrow proxy --domain corp.example.com

  # one proxy for all of them
  $ burrow proxy --domain corp.example.com --domain internal.example.org --pomerium-url https://proxy.corp.example.com

  # then, from another terminal
  $ curl --proxy http://127.0.0.1:1080 https://wiki.corp.example.com/
  $ curl --socks5-hostname 127.0.0.1:1080 https://wiki.corp.example.com/
  $ ssh -o ProxyCommand='ncat --proxy 127.0.0.1:1080 --proxy-type socks5 --proxy-dns remote %h %p' git.corp.example.com
`;

export function registerProxy(program: Command, runtime: Runtime): void {
  const command = program
    .command('proxy')
    .summary('a local HTTP CONNECT and SOCKS5 proxy that tunnels names under --domain through the identity-aware proxy')
    .description(
      'Listen on one loopback port for HTTP CONNECT and SOCKS5 (and SOCKS4a) requests; a host:port under a --domain is tunnelled as "burrow tcp host:port" would, anything else is refused.',
    );
  addFlags(command, 'proxy');
  command.addHelpText('after', EXAMPLES);
  command.action(async (values: ProxyOptionValues) => {
    runtime.setExitCode(await runProxy(values, runtime));
  });
}

/** A proxy ready for tunnels: its access and the transport built on its route options. */
interface ReadyProxy {
  access: ProxyAccess;
  transport: Transport;
}

export async function runProxy(values: ProxyOptionValues, runtime: Runtime): Promise<number> {
  const domains = parseDomains(values.domain ?? []);
  const listen = parseListen(values.listen);
  if (listen.kind === 'stdio') throw new UsageError(text.proxyNoStdio, { code: 'BURROW_INVALID_LISTEN', hint: text.proxyNoStdioHint });
  const fixed = values.pomeriumUrl === undefined ? undefined : parseProxyUrl(values.pomeriumUrl, '--pomerium-url');
  const logger = commandLogger(values, runtime, 'info');
  const limits = sessionLimits(values);
  const stallTimeoutMs = stallTimeout(values);
  const serviceAccount = serviceAccountToken(values, runtime.env);
  if (values.serviceAccount !== undefined) runtime.hideArguments();

  const ready = new Map<string, ReadyProxy>();
  const proxyFor = (proxy: ProxyEndpoint): ReadyProxy => {
    const kept = ready.get(proxy.origin);
    if (kept) return kept;
    const access = proxyAccess(proxy, values, runtime, logger, serviceAccount);
    const target = { proxy, destination: { host: proxy.host, port: proxy.port, authority: formatAuthority(proxy.host, proxy.port) } };
    const made = { access, transport: createTransport('connect', target, target.destination.authority, { ...access.route, pingIntervalMs: 0 }) };
    if (ready.size >= KEPT_PROXIES) ready.delete(ready.keys().next().value!);
    ready.set(proxy.origin, made);
    return made;
  };
  // Every flag is checked now, on the proxy of the first domain: a bad one fails before listening.
  announceRoute(proxyFor(fixed ?? proxyEndpoint('https', domains[0]!)).access, values);

  const listener = await listenTcp(listen.host, listen.port);
  const stop = new AbortController();
  // Signal handlers go in before the address is printed: whoever reads it may signal at once.
  const offSignals = runtime.onSignal(() => stop.abort());
  runtime.stdout.write(`${listener.address}\n`);
  logger.event({ event: 'listening', address: listener.address, domains, proxy: fixed?.origin ?? null, transport: 'connect' });
  if (!listen.loopback) logger.warn(text.nonLoopbackWarning(listener.address));

  const refuse = (conn: number, peer: string, dest: string | null, protocol: ProxyProtocol, error: BurrowError) =>
    logger.event({ event: 'refused', conn, peer, dest, protocol, ...failureFields(error) });

  const client = async (connection: LocalConnection, conn: number, signal: AbortSignal): Promise<void> => {
    const socket = connection.input as Socket;
    const { peer } = connection;
    const read = await readRequest(socket, { timeoutMs: HANDSHAKE_TIMEOUT_MS, signal });
    if (read.kind === 'left') return logger.debug(`${text.connectionPrefix(conn, peer)}${read.reason}`);
    if (read.kind === 'failed') return refuse(conn, peer, null, read.protocol, read.error);
    const { protocol, authority } = read.request;
    const turnDown = (dest: string, error: BurrowError) => {
      closeWith(socket, failureReply(protocol, answerFor(error.code), answerText(error)));
      refuse(conn, peer, dest, protocol, error);
    };
    const parts = splitHostPort(authority);
    if (typeof parts === 'string') {
      const shown = authority.length > SHOWN_DEST ? `${authority.slice(0, SHOWN_DEST)}…` : authority;
      return turnDown(shown, new ProxyRequestError(text.badRequestTarget(shown, parts), { hint: text.proxyClientHint }));
    }
    const dest = formatAuthority(parts.host, parts.port);
    if (isIP(parts.host) !== 0) {
      return turnDown(dest, new ProxyRequestError(text.addressRefused(dest), { code: 'BURROW_DESTINATION_REFUSED', hint: text.addressRefusedHint }));
    }
    if (!domains.some((domain) => underDomain(parts.host, domain))) {
      const error = new ProxyRequestError(text.destinationRefused(dest, domains.join(', ')), { code: 'BURROW_DESTINATION_REFUSED', hint: text.destinationRefusedHint });
      return turnDown(dest, error);
    }
    // Exactly what `burrow tcp host:port [--pomerium-url …]` would tunnel.
    const target = parseTarget(dest, values.pomeriumUrl);
    const { access, transport } = proxyFor(target.proxy);
    await runSession(connection, {
      target,
      transport,
      tokens: access.tokens,
      logger,
      label: peer,
      conn,
      signal,
      limits,
      stallTimeoutMs,
      answer: {
        opened: () => void socket.write(successReply(protocol)),
        failed: (error) => closeWith(socket, failureReply(protocol, answerFor(error.code), answerText(error))),
      },
    });
  };

  await serve(listener, client, {
    signal: stop.signal,
    onRefused: (error) => logger.failure(error),
    onStop: (open) => logger.event({ event: 'shutdown', open }),
  });
  offSignals();
  return ExitCode.ok;
}
