/**
 * Opens the byte stream to the proxy: TCP, then TLS on top of it. The TCP socket is made by hand
 * (not by `tls.connect({host})`) so it can be half-open: a TLS socket wrapped over an existing
 * socket takes that socket's `allowHalfOpen` (nodejs/node#27836), and ssh/git rely on half-close.
 * Every failure leaves here as a BurrowError naming the proxy and what to do.
 */
import { lookup } from 'node:dns';
import net from 'node:net';
import tls from 'node:tls';
import { type Endpoint, formatAuthority, type ProxyEndpoint } from '../target.js';
import { BurrowError, ForwardProxyError, ProxyProtocolError, ProxyUnreachableError, TlsError } from '../errors.js';
import { errorWords, text } from '../output/messages.js';
import { type AnswerErrors, type HttpAnswer, printable, readAnswer } from './http-answer.js';
import type { ForwardProxy } from './proxy-env.js';
import type { TlsSettings } from './tls.js';

export interface DialRequest {
  /** The identity-aware proxy to dial. */
  endpoint: ProxyEndpoint;
  /** The protocols offered in TLS ALPN (`http/1.1` for CONNECT, upgrades and API calls). */
  alpn: readonly string[];
  /** What the connection is for, as messages name it: a destination, or the proxy itself. */
  label: string;
  /** A corporate forward proxy to tunnel through first (proxy-env.ts), if any. */
  forward?: ForwardProxy | undefined;
  /** Required for https proxies. */
  tls: TlsSettings | undefined;
  /** Absolute deadline (ms since epoch) for TCP + TLS. */
  deadline: number;
  signal?: AbortSignal | undefined;
}

/** Whom a failure names: the server dialled (as messages call it), its host, and what it was for. */
export interface DialSubject {
  server: string;
  host: string;
  dest: string;
}

/** The subject of a dial to `endpoint` on behalf of `label`. */
export function dialSubject(endpoint: ProxyEndpoint, label: string): DialSubject {
  return { server: endpoint.origin, host: endpoint.host, dest: label };
}

const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_REJECTED',
]);
const EXPIRED = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);

/**
 * Maps a socket-level failure (from connecting, the handshake, or reading the proxy's answer)
 * to the error a user sees. `phase` says how far we got, for timeouts and resets.
 */
export function classifyNetworkError(error: unknown, subject: DialSubject, phase: 'connect' | 'tls' | 'answer'): BurrowError {
  if (error instanceof BurrowError) return error;
  const err = error as NodeJS.ErrnoException & { reason?: string };
  // Not every error's code is a string: a DOMException (AbortError) has the number 20.
  const code = typeof err.code === 'string' ? err.code : '';
  const origin = subject.server;
  const dest = subject.dest;
  if (code === 'ECONNREFUSED') {
    return new ProxyUnreachableError(text.refused(origin, dest), { hint: text.refusedHint, cause: error });
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME' || code === 'EAI_FAIL') {
    return new ProxyUnreachableError(text.dnsFailed(origin, dest, subject.host), { code: 'BURROW_DNS', hint: text.dnsFailedHint, cause: error });
  }
  // Out of file descriptors: a local limit, not the network (burrow holds two per open tunnel).
  // glibc's getaddrinfo then fails with EAI_SYSTEM, which surfaces as `getaddrinfo EBUSY`
  // (seen at the limit, lowered with prlimit, in test/e2e/load.test.ts).
  if (code === 'EMFILE' || code === 'ENFILE' || (code === 'EBUSY' && (err as { syscall?: string }).syscall === 'getaddrinfo')) {
    return new ProxyUnreachableError(text.tooManyFiles(origin, dest), { code: 'BURROW_TOO_MANY_FILES', hint: text.tooManyFilesHint, cause: error });
  }
  const words = errorWords(code, err.message);
  if (UNTRUSTED.has(code)) {
    return new TlsError(text.tlsUntrusted(origin, words), { code: 'BURROW_TLS_UNTRUSTED', hint: text.tlsUntrustedHint, cause: error });
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    const host = printable(String((err as { host?: unknown }).host ?? subject.host), 80);
    return new TlsError(text.tlsHostname(origin, host, certificateNames(err as { cert?: unknown }) ?? printable(err.reason ?? code, 120)), {
      code: 'BURROW_TLS_HOSTNAME',
      hint: text.tlsHostnameHint(host),
      cause: error,
    });
  }
  if (EXPIRED.has(code)) {
    return new TlsError(text.tlsExpired(origin, words), { code: 'BURROW_TLS', hint: text.tlsExpiredHint, cause: error });
  }
  // The server's alert when it wants (or rejects) our certificate. Under TLS 1.3 it arrives after
  // our side of the handshake is done, so it can surface while reading the CONNECT answer.
  if (/ALERT_(CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA|HANDSHAKE_FAILURE|CERTIFICATE_UNKNOWN)/.test(code)) {
    return new TlsError(text.tlsClientCert(origin, words), { code: 'BURROW_TLS_CLIENT_CERT', hint: text.tlsClientCertHint, cause: error });
  }
  // Reset after the handshake, before any answer: the proxy hung up on the request (a proxy
  // that wants a client certificate under TLS 1.3 often does this instead of sending an alert).
  if (phase === 'answer' && (code === 'ECONNRESET' || code === 'EPIPE')) {
    return new ProxyProtocolError(text.closedBeforeAnswer(origin, dest), { hint: text.closedBeforeAnswerHint, cause: error });
  }
  if (code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS') || phase === 'tls') {
    return new TlsError(text.tlsOther(origin, words), { code: 'BURROW_TLS', hint: text.tlsOtherHint, cause: error });
  }
  return new ProxyUnreachableError(text.unreachable(origin, dest, words), { hint: text.unreachableHint, cause: error });
}

/** The names a peer certificate is for (its subjectAltName, else its CN), short and printable. */
function certificateNames(error: { cert?: unknown }): string | undefined {
  const cert = error.cert as { subjectaltname?: unknown; subject?: { CN?: unknown } } | undefined;
  const san = typeof cert?.subjectaltname === 'string' ? cert.subjectaltname : '';
  const names = san
    .split(/,\s*/)
    .map((entry) => entry.replace(/^(DNS|IP Address):/, '').trim())
    .filter((name) => name !== '' && !/^[A-Za-z ]+:/.test(name));
  if (names.length === 0 && typeof cert?.subject?.CN === 'string') names.push(cert.subject.CN);
  if (names.length === 0) return undefined;
  const shown = names.slice(0, 5).map((name) => printable(name, 60)).join(', ');
  return names.length > 5 ? `${shown} and ${names.length - 5} more` : shown;
}

/** The error for a deadline passing during `what`. */
export function timeoutError(subject: DialSubject, what: string, totalMs: number): ProxyUnreachableError {
  return new ProxyUnreachableError(text.timedOut(subject.server, subject.dest, what, Math.round(totalMs / 100) / 10), {
    code: 'BURROW_TIMEOUT',
    hint: text.timedOutHint,
  });
}

/**
 * Waits for `event` on `socket`, failing on 'error', 'close', the deadline or the abort signal.
 * Listeners are removed either way, so the socket carries no leftovers into the tunnel.
 */
/** One leg of a dial: whom its failures name, its deadline and abort signal. */
interface Leg {
  subject: DialSubject;
  deadline: number;
  signal?: AbortSignal | undefined;
}

function waitFor(socket: net.Socket, event: 'connect' | 'secureConnect', leg: Leg, phase: 'connect' | 'tls', startedAt: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      socket.off(event, onDone);
      socket.off('error', onError);
      socket.off('close', onClose);
      leg.signal?.removeEventListener('abort', onAbort);
    };
    const fail = (error: BurrowError | Error) => {
      cleanup();
      socket.destroy();
      reject(error);
    };
    const onDone = () => {
      cleanup();
      resolve();
    };
    const onError = (error: Error) => fail(classifyNetworkError(error, leg.subject, phase));
    const onClose = () =>
      fail(classifyNetworkError(Object.assign(new Error('connection closed'), { code: 'ECONNRESET' }), leg.subject, phase));
    const onAbort = () => fail(leg.signal?.reason instanceof Error ? leg.signal.reason : new Error('aborted'));
    const timer = setTimeout(
      () => fail(timeoutError(leg.subject, phase === 'connect' ? 'connecting' : 'the TLS handshake', leg.deadline - startedAt)),
      Math.max(0, leg.deadline - Date.now()),
    );
    socket.once(event, onDone);
    socket.once('error', onError);
    socket.once('close', onClose);
    leg.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function tcpConnect(host: string, port: number): net.Socket {
  return net.connect({ host, port, allowHalfOpen: true, noDelay: true, keepAlive: true, keepAliveInitialDelay: 30_000 });
}

/**
 * The first hop of a dial, alone, for `burrow doctor`: whom it names (the forward proxy when
 * there is one, else the identity proxy) and the host and port connected to.
 */
export function firstHop(request: Pick<DialRequest, 'endpoint' | 'label' | 'forward'>): DialSubject & { port: number; forward: boolean } {
  const { endpoint, forward } = request;
  if (!forward) return { ...dialSubject(endpoint, request.label), port: endpoint.port, forward: false };
  return { ...forwardSubject(endpoint, forward), port: forward.port, forward: true };
}

/** Whom failures on the forward-proxy leg name: the forward proxy, asked for the identity proxy. */
function forwardSubject(endpoint: ProxyEndpoint, forward: ForwardProxy): DialSubject {
  return { server: `forward proxy ${forward.origin}`, host: forward.host, dest: formatAuthority(endpoint.host, endpoint.port) };
}

/**
 * Every address the first hop's host resolves to (dns.lookup, as net.connect looks it up, both
 * families), for `burrow doctor`; a failure is the error the dial would fail with.
 */
export async function lookupFirstHop(request: Pick<DialRequest, 'endpoint' | 'label' | 'forward'>): Promise<string[]> {
  const hop = firstHop(request);
  if (net.isIP(hop.host)) return [hop.host];
  try {
    // The callback form: `net` has loaded it already, `dns/promises` would cost every start ~1 ms.
    return await new Promise<string[]>((resolve, reject) =>
      lookup(hop.host, { all: true }, (error, entries) => (error ? reject(error) : resolve(entries.map((entry) => entry.address)))),
    );
  } catch (error) {
    const failure = classifyNetworkError(error, hop, 'connect');
    throw hop.forward ? asForwardError(failure, error) : failure;
  }
}

/**
 * A TCP connection to the identity proxy alone (no forward proxy, no TLS), failing as
 * dialProxy does, for `burrow doctor`. The caller destroys it.
 */
export async function connectTcp(request: Pick<DialRequest, 'endpoint' | 'label' | 'deadline' | 'signal'>): Promise<net.Socket> {
  const startedAt = Date.now();
  const socket = tcpConnect(request.endpoint.host, request.endpoint.port);
  const leg: Leg = { subject: dialSubject(request.endpoint, request.label), deadline: request.deadline, signal: request.signal };
  await waitFor(socket, 'connect', leg, 'connect', startedAt);
  return socket;
}

/**
 * The forward-proxy hop alone: TCP (or TLS) to it and its answer to `CONNECT <identity proxy>`,
 * for `burrow doctor`. The socket is the tunnel through it (the caller destroys it).
 */
export async function dialForward(request: DialRequest & { forward: ForwardProxy }): Promise<{ socket: net.Socket; answer: HttpAnswer }> {
  request.signal?.throwIfAborted();
  return tunnelThroughForward(request, request.forward, Date.now());
}

/** A failure on the forward-proxy leg as a ForwardProxyError (exit 12), keeping a TLS error's hint. */
function asForwardError(burrow: BurrowError, cause: unknown): ForwardProxyError {
  if (burrow instanceof ForwardProxyError) return burrow;
  const hint = burrow instanceof TlsError ? burrow.hint : text.forwardProxyHint;
  return new ForwardProxyError(burrow.message, { hint, cause });
}

/**
 * Connects to the proxy and completes TLS (for https). The socket is half-open capable,
 * no-delay, keepalive. With a forward proxy, the TCP leg is a CONNECT tunnel through it, and
 * TLS to the identity proxy runs inside: the forward proxy never sees the identity token.
 */
export async function dialProxy(request: DialRequest): Promise<net.Socket> {
  try {
    return await dialOnce(request);
  } catch (error) {
    // Untrusted with Node's roots: add the system bundle (loaded only now, see tls.ts) and retry once.
    if (isUntrusted(error) && request.tls?.useSystemRoots()) {
      try {
        return await dialOnce(request);
      } catch (retried) {
        throw withCaSource(retried, request);
      }
    }
    throw withCaSource(error, request);
  }
}

/**
 * Untrusted although the user gave a CA: that CA is not the one (a different fix from giving
 * none). Only for the identity proxy's own certificate; a forward proxy's keeps its wording.
 */
function withCaSource(error: unknown, request: DialRequest): unknown {
  const source = request.tls?.caSource;
  if (!source || !(error instanceof TlsError) || error.code !== 'BURROW_TLS_UNTRUSTED') return error;
  const cause = error.cause as { code?: unknown; message?: string } | undefined;
  const words = errorWords(typeof cause?.code === 'string' ? cause.code : '', cause?.message);
  return new TlsError(text.tlsUntrustedWithCa(request.endpoint.origin, words, source), { code: 'BURROW_TLS_UNTRUSTED', hint: text.tlsWrongCaHint(source), cause: error.cause });
}

function isUntrusted(error: unknown): boolean {
  const tlsError = error instanceof ForwardProxyError ? error.cause : error;
  return tlsError instanceof TlsError && tlsError.code === 'BURROW_TLS_UNTRUSTED';
}

async function dialOnce(request: DialRequest): Promise<net.Socket> {
  const startedAt = Date.now();
  const proxy = request.endpoint;
  const leg: Leg = { subject: dialSubject(proxy, request.label), deadline: request.deadline, signal: request.signal };
  request.signal?.throwIfAborted();
  let raw: net.Socket;
  if (request.forward) {
    raw = (await tunnelThroughForward(request, request.forward, startedAt)).socket;
  } else {
    raw = tcpConnect(proxy.host, proxy.port);
    await waitFor(raw, 'connect', leg, 'connect', startedAt);
  }
  if (proxy.scheme === 'http') return raw;
  if (!request.tls) throw new Error('dialProxy: TLS settings are required for an https proxy');
  const secure = secureOver(raw, proxy, request.alpn, request.tls);
  await waitFor(secure, 'secureConnect', leg, 'tls', startedAt);
  return secure;
}

/**
 * TLS over `socket` to `host:port`, resuming this process's last session with it when there is
 * one (a listener's second tunnel handshakes without the certificate chain).
 */
function secureOver(socket: net.Socket, { host, port }: Endpoint, alpn: readonly string[], settings: TlsSettings): tls.TLSSocket {
  const authority = `${host}:${port}`;
  const secure = tls.connect({
    socket,
    // With a socket given, `host` is only used to check the certificate's name (IP literals too).
    host,
    // SNI is for names only; an IP literal in SNI is against RFC 6066.
    servername: net.isIP(host) ? undefined : host,
    ALPNProtocols: [...alpn],
    secureContext: settings.secureContext,
    rejectUnauthorized: settings.rejectUnauthorized,
    session: settings.session(authority),
  });
  // Only the session of a handshake that passed verification is kept. Under TLS 1.2 the ticket
  // comes before the handshake ends, so the verdict is awaited.
  let established = false;
  secure.once('secureConnect', () => (established = true));
  secure.on('session', (session: Buffer) => {
    const keep = () => {
      if (secure.authorized || !settings.rejectUnauthorized) settings.rememberSession(authority, session);
    };
    if (established) keep();
    else secure.once('secureConnect', keep);
  });
  return secure;
}

/**
 * The forward-proxy hop: TCP (or TLS) to it, `CONNECT <identity proxy>` with its Basic
 * credentials, and its answer. Every failure here names the forward proxy (exit 12).
 */
async function tunnelThroughForward(request: DialRequest, forward: ForwardProxy, startedAt: number): Promise<{ socket: net.Socket; answer: HttpAnswer }> {
  const proxy = request.endpoint;
  const identity = formatAuthority(proxy.host, proxy.port);
  // Failures on this leg name the forward proxy, and what it was asked for: the identity proxy.
  const hop: Leg = { subject: forwardSubject(proxy, forward), deadline: request.deadline, signal: request.signal };
  const relabel = (error: unknown): ForwardProxyError => {
    if (error instanceof ForwardProxyError) return error;
    return asForwardError(error instanceof BurrowError ? error : classifyNetworkError(error, hop.subject, 'connect'), error);
  };
  let socket = tcpConnect(forward.host, forward.port);
  try {
    await waitFor(socket, 'connect', hop, 'connect', startedAt);
    if (forward.scheme === 'https') {
      if (!request.tls) throw new Error('dialProxy: TLS settings are required for an https forward proxy');
      // The forward proxy speaks HTTP/1.1 CONNECT, whatever the identity proxy is offered.
      socket = secureOver(socket, forward, ['http/1.1'], request.tls);
      await waitFor(socket, 'secureConnect', hop, 'tls', startedAt);
    }
    let head = `CONNECT ${identity} HTTP/1.1\r\nHost: ${identity}\r\n`;
    if (forward.authorization) head += `Proxy-Authorization: ${forward.authorization}\r\n`;
    socket.write(`${head}\r\n`);
    const errors: AnswerErrors = {
      malformed: (what) => new ForwardProxyError(text.forwardMalformed(forward.origin, what), { hint: text.forwardProxyHint }),
      closed: () => new ForwardProxyError(text.forwardClosed(forward.origin, identity), { hint: text.forwardProxyHint }),
      network: (error) => relabel(classifyNetworkError(error, hop.subject, 'answer')),
      timeout: () => relabel(timeoutError(hop.subject, 'waiting for the answer', request.deadline - startedAt)),
    };
    const answer = await readAnswer(socket, request.deadline, errors, request.signal);
    const failure = forwardStatusError(answer.status, answer.reason, forward, identity);
    if (failure) {
      socket.destroy();
      throw failure;
    }
    return { socket, answer };
  } catch (error) {
    socket.destroy();
    throw relabel(error);
  }
}

/** Maps the forward proxy's answer to its CONNECT; undefined for 2xx. */
function forwardStatusError(status: number, reason: string, forward: ForwardProxy, identity: string): ForwardProxyError | undefined {
  if (status >= 200 && status < 300) return undefined;
  const origin = forward.origin;
  if (status === 407) {
    return new ForwardProxyError(text.forwardAuth(origin), {
      code: 'BURROW_FORWARD_PROXY_AUTH',
      hint: forward.authorization ? text.forwardAuthRefusedHint : text.forwardAuthMissingHint,
    });
  }
  if (status === 403) return new ForwardProxyError(text.forwardDenied(origin, identity), { code: 'BURROW_FORWARD_PROXY_DENIED', hint: text.forwardDeniedHint });
  if (status === 502 || status === 503 || status === 504) {
    return new ForwardProxyError(text.forwardUpstream(origin, identity, status), { code: 'BURROW_FORWARD_PROXY_UPSTREAM', hint: text.forwardUpstreamHint });
  }
  if (status === 429) return new ForwardProxyError(text.forwardRateLimited(origin, identity), { hint: text.rateLimitedHint(undefined) });
  if (status === 500) return new ForwardProxyError(text.forwardServerError(origin, identity), { hint: text.forwardServerErrorHint });
  return new ForwardProxyError(text.forwardStatus(origin, identity, status, printable(reason, 40)), { hint: text.forwardProxyHint });
}
