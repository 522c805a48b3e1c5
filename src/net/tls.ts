/**
 * Turns the TLS flags into one `SecureContext`, built once per process and shared by every
 * tunnel. Trust = Node's bundled roots + whatever the user adds, and, when that is not enough,
 * the system bundle (where corporate CAs are usually installed), as pomerium-cli does with Go's
 * system pool.
 *
 * The system bundle is loaded only on demand: parsing its ~140 PEM certificates costs ~20 ms of
 * CPU, a third of a ProxyCommand's start-up, and most proxies chain to a public root that Node
 * already has. A handshake that fails as untrusted switches the process to the system roots
 * (`useSystemRoots`) and is retried once (dial.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import tls from 'node:tls';
import { UsageError } from '../errors.js';
import { text } from '../output/messages.js';
import { addCaCertificates } from './node-internals.js';

export interface TlsFlags {
  disableTlsVerification?: boolean;
  alternateCaPath?: string;
  caCert?: string;
  clientCert?: string;
  clientKey?: string;
}

export interface TlsSettings {
  /** The context to handshake with now (switches once to one with the system roots). */
  readonly secureContext: tls.SecureContext;
  readonly rejectUnauthorized: boolean;
  /**
   * Adds the system CA bundle to the trust, once. True if that changed anything (then a failed
   * handshake is worth retrying); false if already done or there is no system bundle.
   */
  useSystemRoots(): boolean;
  /**
   * The TLS session last issued by `host:port` in this process, to resume: a resumed handshake
   * skips the certificate chain (its parsing and checking were a fifth of a listener's CPU when
   * many tunnels opened at once). Kept in memory only; never written anywhere.
   */
  session(authority: string): Buffer | undefined;
  rememberSession(authority: string, session: Buffer): void;
}

/** Servers whose sessions are kept; more than a listener ever talks to (proxy + forward proxy). */
const MAX_SESSIONS = 16;

/** Bundles that Linux distributions and macOS ship; the first that exists is used. */
const SYSTEM_BUNDLES = [
  '/etc/ssl/certs/ca-certificates.crt', // Debian, Ubuntu, Arch, Alpine
  '/etc/pki/tls/certs/ca-bundle.crt', // Fedora, RHEL
  '/etc/ssl/ca-bundle.pem', // openSUSE
  '/etc/ssl/cert.pem', // macOS, BSD
];

function readFile(what: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message;
    throw new UsageError(text.fileUnreadable(what, path, reason), {
      code: 'BURROW_FILE_UNREADABLE',
      hint: text.fileUnreadableHint,
      cause: error,
    });
  }
}

function requirePem(what: string, path: string, pem: string): string {
  if (!pem.includes('-----BEGIN')) {
    throw new UsageError(text.badPem(what, path), { code: 'BURROW_FILE_UNREADABLE', hint: text.badPemHint });
  }
  return pem;
}

/** `--ca-cert` takes PEM text or base64 of it (pomerium-cli takes base64). */
export function decodeCaCert(value: string): string {
  const trimmed = value.trim();
  if (trimmed.startsWith('-----BEGIN')) return trimmed;
  const decoded = Buffer.from(trimmed, 'base64').toString('utf8');
  if (!decoded.includes('-----BEGIN CERTIFICATE')) {
    throw new UsageError(text.badCaCert, { code: 'BURROW_USAGE', hint: text.badCaCertHint });
  }
  return decoded;
}

/** The system CA bundle, or none. `SSL_CERT_FILE` wins, as in OpenSSL and curl. */
function systemRoots(env: NodeJS.ProcessEnv): string[] {
  const candidates = env.SSL_CERT_FILE ? [env.SSL_CERT_FILE] : SYSTEM_BUNDLES;
  for (const path of candidates) {
    if (!existsSync(path)) continue;
    try {
      return [readFileSync(path, 'utf8')];
    } catch {
      // An unreadable system bundle is not the user's problem; Node's roots remain.
    }
  }
  return [];
}

/** Validates the flags and builds the shared TLS settings. Throws UsageError on bad input. */
export function buildTls(flags: TlsFlags, env: NodeJS.ProcessEnv): TlsSettings {
  if (flags.clientCert && !flags.clientKey) {
    throw new UsageError(text.clientCertPair('--client-cert', '--client-key'), { hint: text.clientCertPairHint });
  }
  if (flags.clientKey && !flags.clientCert) {
    throw new UsageError(text.clientCertPair('--client-key', '--client-cert'), { hint: text.clientCertPairHint });
  }
  const extraCas: string[] = [];
  if (flags.alternateCaPath) {
    extraCas.push(requirePem('CA file', flags.alternateCaPath, readFile('CA file', flags.alternateCaPath)));
  }
  if (flags.caCert) extraCas.push(decodeCaCert(flags.caCert));

  const options: tls.SecureContextOptions = {};
  if (flags.clientCert && flags.clientKey) {
    options.cert = requirePem('client certificate', flags.clientCert, readFile('client certificate', flags.clientCert));
    options.key = requirePem('client key', flags.clientKey, readFile('client key', flags.clientKey));
  }
  const build = (cas: string[]): tls.SecureContext => {
    try {
      return contextWithCas(options, cas);
    } catch (error) {
      const reason = (error as Error).message;
      if (options.cert) throw new UsageError(text.badClientKey(reason), { hint: text.badClientKeyHint, cause: error });
      throw new UsageError(text.badCaCert, { hint: text.badCaCertHint, cause: error });
    }
  };
  let secureContext = build(extraCas);
  let systemTried = false;
  const sessions = new Map<string, Buffer>();
  return {
    get secureContext() {
      return secureContext;
    },
    rejectUnauthorized: !flags.disableTlsVerification,
    useSystemRoots() {
      if (systemTried) return false;
      systemTried = true;
      const system = systemRoots(env);
      if (system.length === 0) return false;
      secureContext = build([...system, ...extraCas]);
      // Sessions belong to the context that made them.
      sessions.clear();
      return true;
    },
    session: (authority) => sessions.get(authority),
    rememberSession(authority, session) {
      sessions.delete(authority);
      if (sessions.size >= MAX_SESSIONS) sessions.delete(sessions.keys().next().value as string);
      sessions.set(authority, session);
    },
  };
}

/** A context trusting Node's bundled roots plus `cas` (node-internals.ts says how, and why). */
function contextWithCas(options: tls.SecureContextOptions, cas: string[]): tls.SecureContext {
  if (cas.length === 0) return tls.createSecureContext(options);
  const context = tls.createSecureContext(options);
  return addCaCertificates(context, cas) ? context : tls.createSecureContext({ ...options, ca: [...tls.rootCertificates, ...cas] });
}
