/**
 * `burrow doctor`'s steps on the wire: each walks one stage of the path a tunnel takes, on the
 * same code the tunnel uses (dial.ts's hops, dialProxy, the routes API check, the transport's
 * own open), so a failure is the very BurrowError `burrow tcp` would raise, with its code, hint
 * and exit code. It never opens a browser and never signs in; a token is never part of a result.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { EXPIRY_SKEW_SECONDS, isExpired, tokenInfo } from '../auth/jwt.js';
import { checkToken } from '../auth/verify.js';
import { AuthRequiredError, ClockSkewError, NotSignedInError } from '../errors.js';
import { connectTcp, dialForward, dialProxy, dialSubject, firstHop, lookupFirstHop } from '../net/dial.js';
import { printable, readAnswer } from '../net/http-answer.js';
import { type RouteOptions, routeHeaders } from '../net/route.js';
import { duration, formatExpiry, formatMs } from '../output/format.js';
import { text } from '../output/messages.js';
import type { CredentialStore } from '../store/store.js';
import { formatAuthority, type Target } from '../target.js';
import { answerErrors } from '../tunnel/connect.js';
import type { DatagramTransport } from '../tunnel/datagram.js';
import type { Transport } from '../tunnel/transport.js';
import { type ClockReading, judgeClock, runSteps, type StepResult, type StepSpec } from './steps.js';

export interface DoctorRequest {
  target: Target;
  route: RouteOptions;
  /** The transport `burrow tcp` (or, for a udp+https:// destination, `burrow udp`) would open the tunnel with. */
  transport: Transport | DatagramTransport;
  /** Opens the credential store as a tunnel would; `fallback` is why the keychain is not used, when files are. */
  openStore(): Promise<{ store: CredentialStore; fallback: string | undefined }>;
  /** A service account token, when one was given: then it is what the tunnel presents. */
  serviceAccount: string | undefined;
  signal?: AbortSignal | undefined;
  now?: () => number;
}

/** Runs every step against the proxy of `request.target`; `onStep` hears each result as it comes. */
export function diagnose(request: DoctorRequest, onStep?: (result: StepResult) => void): Promise<StepResult[]> {
  return runSteps(doctorSteps(request), onStep);
}

/** The steps, in order, with what each needs. */
export function doctorSteps(request: DoctorRequest): StepSpec[] {
  const { target, route, signal } = request;
  const now = request.now ?? Date.now;
  const proxy = target.proxy;
  const forward = route.forward;
  const label = target.destination.authority;
  const deadline = () => Date.now() + route.connectTimeoutMs;
  /** What later steps use of earlier ones. */
  const found: { store?: CredentialStore; token?: string; clock?: ClockReading } = {};
  const dial = { endpoint: proxy, label, forward, tls: route.tls, alpn: ['http/1.1'] as const };

  return [
    {
      step: 'dns',
      needs: [],
      async run() {
        const hop = firstHop(dial);
        const addresses = (await lookupFirstHop(dial)).join(', ');
        if (forward) return { detail: text.dnsForwardResolved(forward.host, addresses, proxy.host) };
        return { detail: addresses === hop.host ? text.dnsLiteral(hop.host) : text.dnsResolved(hop.host, addresses) };
      },
    },
    {
      step: 'forward-proxy',
      needs: forward ? ['dns'] : [],
      async run() {
        if (!forward) return { detail: text.forwardNone };
        const { socket, answer } = await dialForward({ ...dial, forward, deadline: deadline(), signal });
        socket.destroy();
        return { detail: text.forwardAnswered(forward.origin, formatAuthority(proxy.host, proxy.port), answer.status, printable(answer.reason, 40)) };
      },
    },
    {
      step: 'tcp',
      needs: ['dns', 'forward-proxy'],
      async run() {
        if (forward) return { detail: text.tcpThroughForward(forward.origin) };
        const started = Date.now();
        const socket = await connectTcp({ endpoint: proxy, label, deadline: deadline(), signal });
        const took = formatMs(Date.now() - started);
        const { remoteAddress, remotePort } = socket;
        const address = remoteAddress === undefined ? formatAuthority(proxy.host, proxy.port) : formatAuthority(remoteAddress, remotePort ?? proxy.port);
        socket.destroy();
        return { detail: text.tcpConnected(address, took) };
      },
    },
    {
      step: 'tls',
      needs: ['tcp'],
      async run() {
        const socket = await dialProxy({ ...dial, alpn: ['http/1.1'], deadline: deadline(), signal });
        try {
          const detail = proxy.scheme === 'http' ? text.tlsPlainHttp(proxy.origin) : describeTls(socket as TLSSocket, route);
          // A request on the connection: a proxy that wants a client certificate says so only
          // now under TLS 1.3 (its alert follows our side of the handshake), and its answer's
          // Date header is what the clock step compares with.
          found.clock = await probe(socket, request);
          return { detail };
        } finally {
          socket.destroy();
        }
      },
    },
    {
      step: 'credential-store',
      needs: [],
      async run() {
        const { store, fallback } = await request.openStore();
        found.store = store;
        if (store.kind === 'keychain') return { detail: store.location() };
        return { detail: fallback === undefined ? text.storeFiles(store.location()) : text.storeFallback(store.location(), fallback) };
      },
    },
    {
      step: 'sign-in',
      needs: request.serviceAccount === undefined ? ['credential-store'] : [],
      async run(passed) {
        const serviceAccount = request.serviceAccount;
        let token: string;
        let what: string;
        if (serviceAccount !== undefined) {
          token = serviceAccount;
          what = text.serviceAccountFound;
        } else {
          const stored = await found.store!.get(proxy.origin);
          const hint = text.notSignedInHint(proxy.origin);
          if (stored === undefined) throw new NotSignedInError(text.notSignedIn(proxy.origin), { hint });
          const expiry = formatExpiry(stored.expiresAt, now());
          if (isExpired(stored.expiresAt, now())) throw new NotSignedInError(text.signInExpired(proxy.origin, stored.user, expiry), { hint });
          token = stored.token;
          what = text.signInFound(stored.user ?? tokenInfo(token).user, expiry);
        }
        // The tunnel step presents it, as `burrow tcp` would, whatever the proxy says of it here.
        found.token = token;
        if (!passed('tls')) return { skipped: text.signInNotChecked(what), after: 'tls' };
        const verdict = await checkToken({ proxy, route, signal }, token);
        if (verdict.ok) return { detail: verdict.checkedBy === 'proxy' ? text.signInAccepted(what) : text.signInLooksWhole(what) };
        const hint = serviceAccount === undefined ? text.notSignedInHint(proxy.origin) : text.serviceAccountRejectedHint;
        if (verdict.status === undefined) throw new AuthRequiredError(text.cachedSignInDamaged(proxy.origin, verdict.problem), { hint });
        const refused = serviceAccount === undefined ? text.cachedSignInRejected : text.serviceAccountRejected;
        throw new AuthRequiredError(refused(proxy.origin, verdict.status), { hint, status: verdict.status });
      },
    },
    {
      step: 'tunnel',
      needs: ['tls'],
      async run() {
        try {
          const tunnel = await request.transport.open({ target, token: found.token, signal });
          if ('stream' in tunnel) tunnel.stream.destroy();
          else tunnel.close();
        } catch (error) {
          // 302/401: what fixes it is a sign-in (doctor never signs in itself).
          if (error instanceof AuthRequiredError) {
            const hint = request.serviceAccount === undefined ? text.notSignedInHint(proxy.origin) : text.serviceAccountRejectedHint;
            throw new AuthRequiredError(error.message, { hint, status: error.status, cause: error });
          }
          throw error;
        }
        const kind = request.transport.name === 'websocket' ? 'WebSocket' : request.transport.name === 'connect-udp' ? 'CONNECT-UDP' : 'CONNECT';
        return { detail: text.tunnelOpened(kind, label) };
      },
    },
    {
      step: 'clock',
      needs: ['tls'],
      async run() {
        const verdict = judgeClock(found.clock!);
        if (verdict.kind === 'no-date') return { detail: text.clockNoDate };
        const seconds = Math.round(Math.abs(verdict.skewSeconds));
        if (!verdict.beyond) return { detail: text.clockInStep(Math.max(1, seconds)) };
        throw new ClockSkewError(text.clockSkewed(proxy.origin, duration(seconds), verdict.skewSeconds > 0 ? 'behind' : 'ahead of'), {
          hint: text.clockSkewedHint(EXPIRY_SKEW_SECONDS),
        });
      },
    },
  ];
}

/** The TLS session in words: protocol, ALPN, the proxy's certificate, ours. */
function describeTls(socket: TLSSocket, route: RouteOptions): string {
  const peer = socket.getPeerCertificate();
  const name = (subject: Record<string, unknown> | undefined) => {
    const value = subject?.CN ?? subject?.O;
    return typeof value === 'string' ? printable(value, 80) : text.unknownName;
  };
  const san = typeof peer.subjectaltname === 'string' ? peer.subjectaltname.split(/,\s*/)[0]?.replace(/^DNS:/, '') : undefined;
  const subject = typeof peer.subject?.CN === 'string' ? name(peer.subject as unknown as Record<string, unknown>) : san ? printable(san, 80) : text.unknownName;
  const validTo = Number.isFinite(Date.parse(peer.valid_to)) ? new Date(peer.valid_to).toISOString().slice(0, 10) : printable(String(peer.valid_to), 40);
  const own = socket.getCertificate();
  const ownSubject = own && 'subject' in own ? (own.subject as unknown as Record<string, unknown> | undefined) : undefined;
  const client = ownSubject ? text.tlsClientCertSent(name(ownSubject)) : text.tlsNoClientCert;
  const detail = text.tlsNegotiated(
    socket.getProtocol() ?? '?',
    typeof socket.alpnProtocol === 'string' ? socket.alpnProtocol : 'none',
    subject,
    name(peer.issuer as unknown as Record<string, unknown>),
    validTo,
    client,
  );
  return route.tls?.rejectUnauthorized === false ? text.tlsNotVerified(detail) : detail;
}

/**
 * `HEAD /` on the connection, its answer head read as the tunnel reads the proxy's (any status
 * will do): when it left, when it came back and its Date header.
 */
async function probe(socket: Socket, request: DoctorRequest): Promise<ClockReading> {
  const { target, route, signal } = request;
  const authority = formatAuthority(target.proxy.host, target.proxy.port);
  let head = `HEAD / HTTP/1.1\r\nHost: ${authority}\r\n`;
  for (const [name, value] of routeHeaders(route, undefined)) head += `${name}: ${value}\r\n`;
  head += 'Connection: close\r\n\r\n';
  const sentAtMs = Date.now();
  socket.write(head);
  const subject = dialSubject(target.proxy, target.destination.authority);
  const answer = await readAnswer(socket, sentAtMs + route.connectTimeoutMs, answerErrors(subject, route.connectTimeoutMs), signal);
  return { date: answer.headers['date'], sentAtMs, receivedAtMs: Date.now() };
}
