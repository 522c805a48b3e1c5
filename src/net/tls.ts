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
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import tls from 'node:tls';
import { UsageError } from '../errors.js';
import { errorWords, text } from '../output/messages.js';
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
  /** The flag that gave extra CAs (`--alternate-ca-path "…"`, `--ca-cert`), for messages; else undefined. */
  readonly caSource: string | undefined;
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
  return readBytes(what, path, text.fileUnreadableHint).toString('utf8');
}

/** The file's bytes, or a UsageError in words; `directoryHint` is the fix when it is a directory. */
function readBytes(what: string, path: string, directoryHint: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    throw new UsageError(text.fileUnreadable(what, path, errorWords(code, (error as Error).message)), {
      code: 'BURROW_FILE_UNREADABLE',
      hint: code === 'EISDIR' ? directoryHint : text.fileUnreadableHint,
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

/**
 * What a would-be CA certificate looks like when it holds no certificate: an SSH or private
 * key, a CSR, DER, random text. Undefined when it has a PEM certificate block.
 */
export function notCertificate(content: Buffer): string | undefined {
  const pem = content.toString('latin1');
  if (/-----BEGIN (X509 |TRUSTED )?CERTIFICATE-----/.test(pem)) return undefined;
  if (content.length === 0 || pem.trim() === '') return text.looksLikeEmpty;
  if (pem.includes('-----BEGIN OPENSSH PRIVATE KEY-----')) return text.looksLikeSshPrivateKey;
  if (/-----BEGIN (RSA |EC |DSA |ENCRYPTED )?PRIVATE KEY-----/.test(pem)) return text.looksLikePrivateKey;
  if (/-----BEGIN (RSA )?PUBLIC KEY-----/.test(pem)) return text.looksLikePublicKey;
  if (/-----BEGIN (NEW )?CERTIFICATE REQUEST-----/.test(pem)) return text.looksLikeCsr;
  if (pem.includes('-----BEGIN PGP')) return text.looksLikePgp;
  if (/^\s*(ssh-(rsa|ed25519|dss)|ecdsa-sha2-\S+|sk-\S+@openssh\.com) /m.test(pem)) return text.looksLikeSshPublicKey;
  // DER: an ASN.1 SEQUENCE with a long-form length, as every certificate starts.
  if (content[0] === 0x30 && (content[1] === 0x82 || content[1] === 0x81)) return text.looksLikeDer;
  const controls = pem.slice(0, 512).replace(/[\t\r\n\x20-\x7e]/g, '').length;
  if (controls > 0) return text.looksLikeBinary;
  const firstLine = pem.trim().split(/\r?\n/)[0] ?? '';
  return text.looksLikeText(firstLine.length > 40 ? `${firstLine.slice(0, 40)}…` : firstLine);
}

/** `--ca-cert` takes PEM text or base64 of it (pomerium-cli takes base64). */
export function decodeCaCert(value: string): string {
  const trimmed = value.trim();
  const pem = trimmed.startsWith('-----BEGIN') ? trimmed : Buffer.from(trimmed, 'base64').toString('utf8');
  if (!pem.includes('-----BEGIN')) {
    throw new UsageError(text.badCaCert, { code: 'BURROW_USAGE', hint: text.badCaCertHint });
  }
  const looksLike = notCertificate(Buffer.from(pem));
  if (looksLike) throw new UsageError(text.notACertificate('--ca-cert', looksLike), { code: 'BURROW_USAGE', hint: text.notACertificateHint });
  requireSoundCertificates('--ca-cert', pem);
  return pem;
}

/**
 * Every certificate block must parse: the native context skips a damaged one silently, and
 * the proxy would then be "untrusted" for no visible reason. One parse per CA; the files hold few.
 */
function requireSoundCertificates(source: string, pem: string): void {
  for (const block of pem.match(/-----BEGIN CERTIFICATE-----[^-]*-----END CERTIFICATE-----/g) ?? []) {
    try {
      new X509Certificate(block);
    } catch (error) {
      throw new UsageError(text.badCaFile(source, text.damagedCertificate), { code: 'BURROW_USAGE', hint: text.notACertificateHint, cause: error });
    }
  }
}

/** The CA file of `--alternate-ca-path`, refused with what it looks like when it holds no certificate. */
function readCaFile(path: string): string {
  const content = readBytes('CA file', path, text.notACertificateHint);
  const looksLike = notCertificate(content);
  if (looksLike) {
    throw new UsageError(text.notACertificate(`CA file ${JSON.stringify(path)} (--alternate-ca-path)`, looksLike), {
      code: 'BURROW_FILE_UNREADABLE',
      hint: text.notACertificateHint,
    });
  }
  const pem = content.toString('utf8');
  requireSoundCertificates(text.caFileSource(path), pem);
  return pem;
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
  if (flags.alternateCaPath) extraCas.push(readCaFile(flags.alternateCaPath));
  if (flags.caCert) extraCas.push(decodeCaCert(flags.caCert));
  // Whom a failure to trust the proxy names: the CA the user gave, if any.
  const caSource = flags.alternateCaPath ? text.caFileSource(flags.alternateCaPath) : flags.caCert ? '--ca-cert' : undefined;

  const options: tls.SecureContextOptions = {};
  if (flags.clientCert && flags.clientKey) {
    options.cert = requirePem('client certificate', flags.clientCert, readFile('client certificate', flags.clientCert));
    options.key = requirePem('client key', flags.clientKey, readFile('client key', flags.clientKey));
    if (options.key.includes('-----BEGIN OPENSSH PRIVATE KEY-----')) {
      throw new UsageError(text.badClientKey(text.clientKeyIsSsh(flags.clientKey)), { code: 'BURROW_FILE_UNREADABLE', hint: text.badClientKeyHint });
    }
  }
  const build = (cas: string[]): tls.SecureContext => {
    try {
      return contextWithCas(options, cas);
    } catch (error) {
      // Which part failed: the client pair (tried alone, only now, to name the right flags) or a CA.
      const pairError = options.cert ? pairFailure(options) : undefined;
      if (pairError) {
        throw new UsageError(text.badClientKey(errorWords('', pairError.message)), { hint: text.badClientKeyHint, cause: pairError });
      }
      const reason = errorWords('', (error as Error).message);
      throw new UsageError(text.badCaFile(caSource ?? 'the system CA bundle', reason), { hint: text.notACertificateHint, cause: error });
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
    caSource,
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

/** The error a context with only the client pair fails with, or undefined if the pair is fine. */
function pairFailure(options: tls.SecureContextOptions): Error | undefined {
  try {
    tls.createSecureContext(options);
    return undefined;
  } catch (error) {
    return error as Error;
  }
}

/** A context trusting Node's bundled roots plus `cas` (node-internals.ts says how, and why). */
function contextWithCas(options: tls.SecureContextOptions, cas: string[]): tls.SecureContext {
  if (cas.length === 0) return tls.createSecureContext(options);
  const context = tls.createSecureContext(options);
  return addCaCertificates(context, cas) ? context : tls.createSecureContext({ ...options, ca: [...tls.rootCertificates, ...cas] });
}
