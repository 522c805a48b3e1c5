/**
 * Every sentence burrow shows a user, in one place, so wording stays consistent and reviewable.
 * Messages name the problem (with the proxy and destination involved); hints name the fix.
 * Nothing here may include a token: callers pass hosts, statuses and paths only.
 */

const q = (value: string) => JSON.stringify(value);

/**
 * The proxy's sign-out page, `<origin>/.pomerium/sign_out`: where Pomerium ends its own browser
 * session (a cookie in the browser, separate from the token burrow caches). Port 443 is left out.
 */
export function signOutUrl(proxy: string): string {
  return new URL('/.pomerium/sign_out', proxy).href;
}

/**
 * System error codes (errno, getaddrinfo) and OpenSSL's, as words. A message shows these words
 * instead of the raw code; codes not listed are shown as they are.
 */
const systemWords: Readonly<Record<string, string>> = {
  EADDRNOTAVAIL: 'that address is not one of this machine\'s',
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOENT: 'no such file',
  EISDIR: 'it is a directory, not a file',
  ENOSPC: 'no space left on device',
  EDQUOT: 'the disk quota is used up',
  EFBIG: 'the file is too large',
  EIO: 'an input/output error',
  ENOTDIR: 'a part of the path is not a directory',
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'the connection was reset',
  ECONNABORTED: 'the connection was aborted',
  EPIPE: 'the connection was closed while sending',
  ETIMEDOUT: 'the connection timed out',
  ENETUNREACH: 'the network is unreachable (no route to it from this machine)',
  EHOSTUNREACH: 'the host is unreachable (no route to it from this machine)',
  ENETDOWN: 'the network is down',
  EHOSTDOWN: 'the host is down',
  EPROTO: 'a protocol error on the connection',
  EAFNOSUPPORT: 'this machine has no IPv4 or IPv6 for that address',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'the name lookup failed for now (DNS did not answer)',
  // OpenSSL, as Node names its errors.
  ERR_SSL_WRONG_VERSION_NUMBER: 'the server did not answer with TLS: is it plain http, or another port?',
  ERR_SSL_PACKET_LENGTH_TOO_LONG: 'the server did not answer with TLS: is it plain http, or another port?',
  ERR_SSL_HTTP_REQUEST: 'the server expected plain http, not TLS',
  ERR_SSL_UNSUPPORTED_PROTOCOL: 'the server offers only a TLS version too old to use',
  ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION: 'no TLS version in common with the server',
  ERR_SSL_NO_PROTOCOLS_AVAILABLE: 'no TLS version in common with the server',
  ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE: 'the server refused the handshake',
  ERR_SSL_TLSV1_ALERT_INTERNAL_ERROR: 'the server reported an internal TLS error',
  ERR_SSL_TLSV1_UNRECOGNIZED_NAME: 'the server does not know this host name (SNI)',
  ERR_SSL_TLSV1_ALERT_UNRECOGNIZED_NAME: 'the server does not know this host name (SNI)',
  ERR_SSL_UNEXPECTED_EOF_WHILE_READING: 'the server closed the connection during the handshake',
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: 'it asked for a client certificate and got none',
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: 'it rejected the client certificate',
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: 'it does not trust the CA of the client certificate',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN: 'it rejected the client certificate',
  ERR_TLS_HANDSHAKE_TIMEOUT: 'the handshake timed out',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'no CA trusted here signed it',
  UNABLE_TO_GET_ISSUER_CERT: 'no CA trusted here signed it',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'no CA trusted here signed it',
  SELF_SIGNED_CERT_IN_CHAIN: 'it chains to a self-signed CA that is not trusted here',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'it is self-signed',
  CERT_UNTRUSTED: 'it is not trusted for this purpose',
  CERT_SIGNATURE_FAILURE: 'its signature does not verify',
  CERT_REJECTED: 'it was rejected',
  CERT_HAS_EXPIRED: 'it has expired',
  CERT_NOT_YET_VALID: 'it is not valid yet',
};

/** OpenSSL's reason strings (`error:1E08010C:DECODER routines::unsupported`), as words. */
const opensslReasons: ReadonlyArray<readonly [RegExp, string]> = [
  [/DECODER routines::unsupported/, 'its contents are not a certificate or key OpenSSL can read'],
  [/no start line/, 'it has no PEM block'],
  [/bad base64 decode|BIO routines/, 'its PEM data is damaged (bad base64)'],
  [/ASN1|asn1|wrong tag|nested asn1 error|header too long|too long/, 'its PEM data is damaged (not valid DER inside)'],
  [/key values mismatch/, 'the key does not belong to the certificate'],
  [/bad decrypt|bad password read/, 'the key is encrypted with a passphrase (burrow needs an unencrypted key)'],
  [/ee key too small|ca md too weak/, 'the key or signature is too weak for OpenSSL\'s security level'],
];

/** A system or OpenSSL error as words: by its code, else by OpenSSL's reason, else as it came. */
export function errorWords(code: string, message = ''): string {
  const known = systemWords[code];
  if (known) return known;
  for (const [pattern, words] of opensslReasons) if (pattern.test(message)) return words;
  return code || message;
}

type CloseReasonWord = 'local_closed' | 'remote_closed' | 'shutdown' | 'broken' | 'session_limit' | 'idle_timeout';

export const text = {
  // --- command line ---------------------------------------------------------------------------
  invalidDestination: (input: string, reason: string) => `invalid destination ${q(input)}: ${reason}`,
  destinationForms: 'use host:port, tcp+https://host:port or tcp+https://proxy[:port]/host:port',
  udpDestinationForms: 'use host:port, udp+https://host:port or udp+https://proxy[:port]/host:port',
  otherFamilyScheme: (scheme: string, command: 'tcp' | 'udp') => `"${scheme}://" destinations are for "burrow ${command}"`,
  udpNoStdio: 'UDP has no stdin/stdout mode',
  udpNoStdioHint: 'listen on a local port: --listen :PORT (the default picks a free one and prints it)',
  websocketPomeriumUrlHint: 'a wss:// destination names its gateway itself: leave out --pomerium-url',
  transportMismatch: (transport: string, input: string) => `--transport ${transport} cannot be used with the destination ${q(input)}`,
  transportMismatchHint: 'websocket needs a wss:// (or ws://) destination, connect a host:port or tcp+https:// one; or leave --transport out',
  invalidHeader: (input: string) => `invalid --header ${q(input)}`,
  invalidHeaderHint: 'use --header "Name: value" (a token name, a colon, a value without line breaks)',
  reservedHeader: (name: string) => `--header cannot set ${name}: burrow sets it itself`,
  reservedHeaderHint: 'leave the header out: it belongs to the connection burrow opens',
  tokenHeader: (name: string) => `--header cannot set ${name}: that header carries the proxy's token, which burrow sends itself`,
  tokenHeaderHint:
    'a token on the command line is visible to other users in ps: sign in (burrow login <proxy-url>) or pass it with --service-account-file or BURROW_SERVICE_ACCOUNT',
  sessionCookieHeader: (name: string) => `--header ${name} cannot carry a _pomerium cookie: it is the proxy's session token`,
  sessionCookieHeaderHint:
    'a token on the command line is visible to other users in ps: sign in (burrow login <proxy-url>) instead, and leave the cookie out',
  forwardProxyHeader: (name: string) => `--header cannot set ${name}: it is for the forward proxy, which burrow talks to itself`,
  forwardProxyHeaderHint: 'put forward-proxy credentials in its URL: --proxy http://user:password@host:port',
  userAgentHeader: (name: string) => `--header cannot set ${name}: burrow sends its own (burrow/<version>), and a second one makes the request ambiguous`,
  userAgentHeaderHint: 'leave the header out; gateways that want a key take it in a header of their own, such as PRIVATE-TOKEN',
  invalidUrl: (what: string, input: string, reason: string) => `invalid ${what} ${q(input)}: ${reason}`,
  proxyUrlForm: 'use https://host[:port], for example https://proxy.corp.example.com',
  proxyOriginForm: 'give the proxy as a host name or https://host[:port], for example proxy.corp.example.com',
  invalidListen: (input: string, reason: string) => `invalid --listen ${q(input)}: ${reason}`,
  listenForms: 'use ":PORT" (loopback), "HOST:PORT", "-" (stdin/stdout, for ssh ProxyCommand) or leave it out',
  invalidNumber: (flag: string, input: string, range: string) => `invalid ${flag} ${q(input)}: expected ${range}`,
  invalidNumberHint: (flag: string) => `for example ${flag} 10`,
  invalidDuration: (flag: string, input: string) =>
    `invalid ${flag} ${q(input)}: expected a time from 1s to 24d, such as 90s, 30m, 8h or 1h30m (a plain number is seconds)`,
  invalidDurationHint: (flag: string) => `for example ${flag} 8h`,
  conflictingFlags: (a: string, b: string) => `${a} and ${b} cannot be used together`,
  conflictingFlagsHint: 'keep one of them',
  clientCertPair: (given: string, missing: string) => `${given} was given without ${missing}`,
  clientCertPairHint: 'a client certificate needs both --client-cert <pem> and --client-key <pem>',
  fileUnreadable: (what: string, path: string, reason: string) => `cannot read ${what} ${q(path)}: ${reason}`,
  fileUnreadableHint: 'check the path and its permissions',
  badPem: (what: string, path: string) => `${what} ${q(path)} does not contain a PEM certificate or key`,
  badPemHint: 'give a PEM file (it starts with "-----BEGIN")',
  badCaCert: '--ca-cert is neither a PEM certificate nor base64 of one',
  notACertificate: (source: string, looksLike: string) => `${source} is not a certificate: it looks like ${looksLike}`,
  notACertificateHint:
    'give the certificate of the CA that signed the proxy\'s certificate, in PEM form (it has a "-----BEGIN CERTIFICATE-----" line); the proxy\'s admins can tell you which',
  damagedCertificate: 'a "-----BEGIN CERTIFICATE-----" block in it is damaged (not a valid certificate)',
  clientKeyIsSsh: (path: string) =>
    `--client-key ${q(path)} is an SSH key (OpenSSH format); a client certificate needs its PEM private key`,
  badCaFile: (source: string, reason: string) => `the CA certificate in ${source} cannot be used: ${reason}`,
  caFileSource: (path: string) => `--alternate-ca-path ${q(path)}`,
  looksLikeSshPrivateKey: 'an SSH private key (keep it to yourself)',
  looksLikeSshPublicKey: 'an SSH public key',
  looksLikePrivateKey: 'a private key (keep it to yourself)',
  looksLikePublicKey: 'a public key, not a certificate',
  looksLikeCsr: 'a certificate request (CSR), not a signed certificate',
  looksLikePgp: 'a PGP key',
  looksLikeDer: 'binary (DER) data; convert it to PEM with: openssl x509 -inform der -in FILE -out ca.pem',
  looksLikeBinary: 'binary data',
  looksLikeEmpty: 'an empty file',
  looksLikeText: (firstLine: string) => `text without a "-----BEGIN CERTIFICATE-----" line (it starts ${q(firstLine)})`,
  badCaCertHint: 'pass the CA certificate as PEM text or as base64 of the PEM file',
  badClientKey: (reason: string) => `the client certificate and key cannot be used: ${reason}`,
  badClientKeyHint: 'check that --client-key is the private key of --client-cert',
  emptyServiceAccount: (source: string) => `the service account token from ${source} is empty`,
  emptyServiceAccountHint: 'put the service account JWT in it, or leave it out to sign in with a browser',

  // --- usage errors (commander's, in burrow's words) -------------------------------------------
  unknownCommand: (name: string, under: string) => `unknown command ${q(name)}${under ? ` for ${under}` : ''}`,
  unknownOption: (flag: string, under: string) => `unknown option ${q(flag)}${under ? ` for ${under}` : ''}`,
  didYouMean: (suggestion: string, help: string) => `did you mean ${suggestion}? Run "${help}" for usage`,
  missingArgument: (command: string, argument: string) => `${command} needs ${argument}`,
  optionNeedsValue: (flag: string, form: string) => `${flag} needs a value (${form})`,
  excessArguments: (command: string, expected: number, got: number) =>
    `${command} takes ${expected === 0 ? 'no arguments' : expected === 1 ? '1 argument' : `${expected} arguments`}, not ${got}`,
  excessArgumentsHint: (help: string) => `quote an argument that contains spaces; run "${help}" for usage`,
  invalidChoice: (what: string, input: string, choices: string) => `invalid ${what} ${q(input)}: expected ${choices}`,
  usageHint: (help: string) => `run "${help}" for usage`,

  // --- standard output ----------------------------------------------------------------------------
  outputFailed: (reason: string) => `could not write the output: ${reason}`,
  tunnelOutputFailed: (dest: string, reason: string) => `could not pass on what came from ${dest}: ${reason}`,
  outputFailedHint: 'the output is incomplete: free some space on the disk it goes to, or send it elsewhere',
  listenerOutputFailed: (reason: string) => `could not write the listening address on stdout: ${reason}; the listener keeps serving`,

  // --- ssh-config -------------------------------------------------------------------------------
  sshConfigNeedsHost: (url: string) => `with a proxy URL (${url}), say which ssh hosts go through it`,
  sshConfigNeedsHostHint: 'add --host with an ssh Host pattern, for example --host "*.corp.example.com"',
  sshConfigNeedsHostForDestination: (destination: string) => `with a destination (${destination}), say which ssh hosts go to it`,
  sshConfigLineBreak: (flag: string) => `${flag} cannot be written into an ssh config: its value has a line break`,
  sshConfigLineBreakHint: 'give the value on one line',
  invalidControlPersist: (value: string) => `invalid --control-persist ${q(value)}: it must be ssh's time format`,
  invalidControlPersistHint: 'for example --control-persist 10m, 1h, 90 (seconds) or yes (until the master is stopped)',
  controlPersistWithoutMultiplex: '--control-persist only means something with --multiplex',
  controlPersistWithoutMultiplexHint: 'add --multiplex, or leave out --control-persist',
  controlPathTooLong: (dir: string, max: number) => `the ssh control socket directory ${q(dir)} is too long for a Unix socket path (${max} characters at most)`,
  controlPathTooLongHint: 'set XDG_CACHE_HOME to a shorter directory for ssh-config and for ssh, or leave out --multiplex',
  controlDirFailed: (dir: string, why: string) => `cannot create the ssh control socket directory ${q(dir)} (${why})`,
  controlDirFailedHint: 'check who owns the cache directory, or set XDG_CACHE_HOME to a directory of yours',
  /** Comment lines of a --multiplex block, joined by newlines. */
  sshConfigMultiplexNote: (persist: string) => [
    `One ssh connection per host, shared by every session and kept ${persist === 'yes' ? 'until "ssh -O exit <host>"' : `${persist} after the last one ends ("ssh -O exit <host>" ends it now)`}:`,
    'one tunnel, opened (and checked by the proxy\'s policy) once. ssh sends burrow\'s messages nowhere',
    'under a shared connection: sign in first with "burrow login"; "burrow doctor" explains a failure.',
  ].join('\n'),
  badHostPattern: (pattern: string) => `invalid ssh Host pattern ${q(pattern)}`,
  badHostPatternHint: 'use host names with * and ? wildcards, for example git.corp.example.com or "*.corp.example.com"',
  badSshUser: (user: string) => `invalid --user ${q(user)}`,
  badSshUserHint: 'use a plain user name, for example --user git',

  // --- listener --------------------------------------------------------------------------------
  listening: (address: string, destination: string, proxy: string) =>
    `listening on ${address}, forwarding to ${destination} via ${proxy}`,
  listenExample: (host: string, port: number) => `for example: ssh -p ${port} git@${host}`,
  nonLoopbackWarning: (address: string) =>
    `listening on ${address}, which other machines can reach: anyone who can connect uses your sign-in`,
  listenFailed: (address: string, reason: string) => `cannot listen on ${address}: ${reason}`,
  listenInUseHint: 'pick another port, or stop the program using it',
  listenPermissionHint: 'ports below 1024 need privileges; pick a port above 1024',
  listenGenericHint: 'check the --listen address',
  listenNotLocalHint: 'listen on an address of this machine: ":PORT" for loopback, or one that "ip addr" (ifconfig) lists',
  shuttingDown: (open: number) => `shutting down (${open} open ${open === 1 ? 'tunnel' : 'tunnels'})`,
  acceptFailed: (address: string, reason: string) => `cannot accept a connection on ${address}: ${reason}`,
  listenerFull: (peer: string, tunnels: number, limit: number) =>
    `refused the connection from ${peer}: ${tunnels} tunnels are open, all that the open-files limit of ${limit} leaves room for`,
  udpFull: (peer: string, sessions: number, limit: number) =>
    `dropping datagrams from ${peer} and any other new peer: ${sessions} UDP sessions are open, all that the open-files limit of ${limit} leaves room for — ` +
    'each holds one file descriptor: raise the open-files limit (ulimit -n, or LimitNOFILE= for a service), or shorten --idle-timeout so quiet sessions end sooner',
  udpFullDropped: (datagrams: number) => `${datagrams} ${datagrams === 1 ? 'datagram' : 'datagrams'} from new peers dropped while every UDP session was taken`,
  tooManyFiles: (proxy: string, dest: string) => `cannot connect to ${proxy} (for ${dest}): too many open files`,
  tooManyFilesHint:
    'burrow uses two file descriptors per open tunnel: raise the open-files limit (ulimit -Hn / ulimit -n, or LimitNOFILE= for a service), or open fewer connections at once',
  connectionFailed: (peer: string) => `connection from ${peer} failed`,

  // --- burrow proxy ------------------------------------------------------------------------------
  invalidDomain: (input: string, reason: string) => `invalid --domain ${q(input)}: ${reason}`,
  domainForm: 'give a DNS name such as corp.example.com: it covers that name and every name under it',
  domainRequired: 'burrow proxy needs at least one --domain: it tunnels only names under the domains it is given',
  domainRequiredHint: 'name the domains the identity-aware proxy routes, for example --domain corp.example.com (repeatable)',
  proxyNoStdio: 'burrow proxy has no stdin/stdout mode',
  proxyNoStdioHint: 'listen on a local port: --listen :PORT (the default is 127.0.0.1:1080)',
  proxyListening: (address: string, domains: string, proxy: string | null) =>
    `listening on ${address} (HTTP CONNECT and SOCKS5), tunnelling names under ${domains} via ${proxy ?? "each host's own proxy (https://host:443)"}`,
  destinationRefused: (dest: string, domains: string) => `refused a tunnel to ${dest}: it is not under --domain ${domains}`,
  destinationRefusedHint:
    'burrow proxy tunnels names under its --domain list and passes nothing else on (it is not an open proxy): add a --domain if the identity-aware proxy routes that name',
  addressRefused: (dest: string) => `refused a tunnel to ${dest}: it is an IP address, and only names under --domain are tunnelled`,
  addressRefusedHint:
    'have the client send the host name instead of resolving it (curl --socks5-hostname or socks5h://, ncat --proxy-dns remote, an HTTPS proxy setting)',
  badRequestTarget: (input: string, reason: string) => `invalid destination ${q(input)} in the request: ${reason}`,
  socksNoMethods: 'the SOCKS5 greeting offers no authentication method',
  socksAuthOnly: 'the SOCKS5 client offers only authentication methods burrow does not accept (it accepts "no authentication" only)',
  socksAuthHint: 'configure the client for SOCKS5 without a user name or password: who you are is what the identity-aware proxy checks',
  malformedSocks: (what: string) => `malformed SOCKS request: ${what}`,
  socksAddressType: (type: number) => `unsupported SOCKS5 address type ${type} (1 IPv4, 3 domain name and 4 IPv6 are)`,
  socksCommand: (command: string) => `the SOCKS command ${command} is not supported: burrow proxy opens CONNECT tunnels only`,
  socksCommandHint: "use the client's plain connect mode (no BIND, no UDP ASSOCIATE)",
  malformedHttp: (line: string) => `malformed HTTP request: ${q(line)} is not "CONNECT host:port HTTP/1.1"`,
  httpMethod: (method: string) => `${method} requests are not proxied: burrow proxy is a tunnel proxy that answers CONNECT host:port only`,
  httpMethodHint: 'use it as an HTTPS proxy (clients send CONNECT for https:// URLs) or as a SOCKS5 proxy; plain http:// URLs are not forwarded',
  httpHeadTooLarge: (kib: number) => `the HTTP request head is larger than ${kib} KiB`,
  requestCutOff: 'the connection ended before the request was complete',
  handshakeTimeout: (seconds: number) => `no complete request within ${seconds} s of connecting`,
  proxyClientHint: 'point an HTTP CONNECT or SOCKS5 client at this port, for example curl --proxy http://HOST:PORT or ncat --proxy HOST:PORT --proxy-type socks5',

  // --- per-connection events (events.ts; info level unless said) --------------------------------
  connectionPrefix: (conn: number, peer: string) => `#${conn} ${peer}: `,
  connecting: (dest: string, proxy: string, transport: string) => `connecting to ${dest} via ${proxy} (${transport})`,
  signInRequired: (proxy: string, status: number | null) => `${proxy} asks for a sign-in${status ? ` (HTTP ${status})` : ''}; signing in`,
  connected: (dest: string, took: string) => `connected to ${dest} in ${took}`,
  closed: (lasted: string, up: string, down: string, reason: CloseReasonWord, datagrams?: { up: number; down: number; dropped: number }) =>
    `closed after ${lasted}, ${datagrams ? `${datagrams.up} ${datagrams.up === 1 ? 'datagram' : 'datagrams'} (${up}) up, ${datagrams.down} (${down}) down${datagrams.dropped ? `, ${datagrams.dropped} dropped` : ''}` : `${up} up, ${down} down`} (${
      {
        local_closed: 'the local side closed',
        remote_closed: 'the far side closed',
        shutdown: 'burrow is stopping',
        broken: 'broken',
        session_limit: 'a session limit was reached',
        idle_timeout: 'idle',
      }[reason]
    })`,
  unknownBytes: '? bytes',

  // --- the proxy's answers ---------------------------------------------------------------------
  authRequired: (proxy: string, dest: string, status: number) =>
    `sign-in required by ${proxy} for ${dest} (HTTP ${status})`,
  authRequiredHint: 'run "burrow login <proxy-url>" in a terminal, or pass a token with --service-account-file',
  accessDenied: (proxy: string, dest: string, user: string | undefined) =>
    `access denied by ${proxy} for ${dest} (HTTP 403${user ? `, signed in as ${user}` : ''})`,
  accessDeniedHint: (proxy: string, user: string | undefined) =>
    `the route's policy does not allow ${user ?? 'your account'}: ask the proxy's admins for access; to sign in as someone else, run "burrow logout --browser ${proxy}" (it also opens ${signOutUrl(proxy)}: the proxy keeps its own browser session and would sign the same user straight back in)`,
  routeNotFound: (proxy: string, dest: string) => `${proxy} has no route for ${dest} (HTTP 404)`,
  routeNotFoundHint: 'check the destination host and port, or --pomerium-url if the proxy is elsewhere',
  upstreamUnavailable: (proxy: string, dest: string, status: number) =>
    `${proxy} could not reach ${dest} (HTTP ${status})`,
  upstreamUnavailableHint: (retry: string | undefined) =>
    `the service behind the route is down or unreachable from the proxy: try again ${retry ?? 'later'} or tell its admins`,
  proxyServerError: (proxy: string, dest: string, status: number) =>
    `${proxy} failed with a server error on the tunnel request for ${dest} (HTTP ${status})`,
  proxyServerErrorHint: (retry: string | undefined) =>
    `the problem is on the proxy's side, not in your request: try again ${retry ?? 'later'}, and tell its admins if it lasts`,
  rateLimited: (proxy: string, dest: string) => `${proxy} is rate-limiting and turned down the tunnel request for ${dest} (HTTP 429)`,
  rateLimitedHint: (retry: string | undefined) =>
    `too many requests in a short time: wait and try again ${retry ?? 'later'} (a loop that reconnects at once makes it worse)`,
  retryInSeconds: (seconds: number) => `in ${seconds} s (Retry-After)`,
  retryAfterDate: (date: string) => `after ${date} (Retry-After)`,
  unexpectedStatus: (proxy: string, dest: string, status: number, reason: string) =>
    `${proxy} answered the tunnel request for ${dest} with HTTP ${status}${reason ? ` ${reason}` : ''}`,
  unexpectedStatusHint: 'the proxy is not a tunnel endpoint for this route: check --pomerium-url and that the route is tcp+https://',
  malformedAnswer: (proxy: string, dest: string, what: string) =>
    `${proxy} sent a malformed answer to the tunnel request for ${dest}: ${what}`,
  malformedAnswerHint: 'check that --pomerium-url points at the identity-aware proxy, not at another service',
  answerNotHttp: (got: string, lookalike: string | undefined) =>
    `expected an HTTP/1.1 status line, got "${got}"${lookalike ? ` (${lookalike})` : ''}`,
  answerBareLf: (line: string) => `the status line "${line}" ends without CR LF`,
  answerBadHeader: (line: string) => `bad header line "${line}"`,
  answerTooLarge: (kib: number) => `the answer head is larger than ${kib} KiB`,
  answerCutOff: 'the answer was cut off',
  looksLikeSsh: 'an SSH server answered',
  looksLikeImap: 'an IMAP server answered',
  looksLikePop: 'a POP3 server answered',
  looksLikeSmtpFtp: 'an SMTP or FTP server answered',
  looksLikeTls: 'a TLS server answered: use https://',
  looksLikeNewerHttp: 'an HTTP/2 or HTTP/3 answer, but tunnels need HTTP/1.1',
  closedBeforeAnswer: (proxy: string, dest: string) =>
    `${proxy} closed the connection before answering the tunnel request for ${dest}`,
  closedBeforeAnswerHint:
    'check that the proxy speaks HTTPS on that port and supports tcp+https routes; if it requires mutual TLS, pass --client-cert and --client-key',

  // --- network and TLS --------------------------------------------------------------------------
  refused: (proxy: string, dest: string) => `cannot connect to ${proxy} (for ${dest}): connection refused`,
  refusedHint: 'check the proxy address and port, and that it is running',
  unreachable: (proxy: string, dest: string, code: string) => `cannot connect to ${proxy} (for ${dest}): ${code}`,
  unreachableHint: 'check your network connection (VPN, Wi-Fi) and the proxy address',
  dnsFailed: (proxy: string, dest: string, host: string) => `cannot connect to ${proxy} (for ${dest}): host ${q(host)} not found`,
  dnsFailedHint: 'check the spelling, or pass the proxy with --pomerium-url',
  timedOut: (proxy: string, dest: string, what: string, seconds: number) =>
    `${what} to ${proxy} (for ${dest}) timed out after ${seconds}s`,
  timedOutHint: 'check your network, or raise --connect-timeout',
  tlsUntrusted: (proxy: string, detail: string) => `TLS: the certificate of ${proxy} is not trusted (${detail})`,
  tlsUntrustedWithCa: (proxy: string, detail: string, source: string) =>
    `TLS: the certificate of ${proxy} is not signed by the CA given with ${source}, nor by one this machine trusts (${detail})`,
  tlsWrongCaHint: (source: string) =>
    `${source} is not the CA that issued the proxy's certificate: ask the proxy's admins for the right one (openssl s_client -connect HOST:PORT -showcerts shows the chain)`,
  tlsUntrustedHint:
    'if your company uses its own certificate authority, pass its certificate with --alternate-ca-path <pem> (or --ca-cert)',
  tlsHostname: (proxy: string, host: string, names: string) =>
    `TLS: the certificate of ${proxy} is not valid for this name: it is for ${names}, not for ${host}`,
  tlsHostnameHint: (host: string) =>
    `connect with a name the certificate is for (in --pomerium-url or the destination), or ask the proxy's admins for a certificate that covers ${host}`,
  tlsExpired: (proxy: string, detail: string) => `TLS: the certificate of ${proxy} has expired or is not yet valid (${detail})`,
  tlsExpiredHint: 'check this machine\'s clock, or tell the proxy\'s admins their certificate expired',
  tlsClientCert: (proxy: string, detail: string) => `TLS: ${proxy} refused the client certificate (${detail})`,
  tlsClientCertHint: 'the proxy requires mutual TLS: pass --client-cert <pem> and --client-key <pem> issued by its CA',
  tlsOther: (proxy: string, detail: string) => `TLS handshake with ${proxy} failed: ${detail}`,
  tlsOtherHint: 'check that the proxy speaks HTTPS on that port',
  tlsDisabledWarning: 'TLS verification is disabled (--disable-tls-verification): anyone on the path can read your traffic and token',
  plainHttpWarning: (proxy: string) => `${proxy} is plain http: your token and traffic are not encrypted on the way to the proxy`,

  // --- sign-in --------------------------------------------------------------------------------
  browserOpened: (proxy: string, wait: string, url: string) =>
    `opened your browser to sign in to ${proxy}; waiting up to ${wait} (Ctrl-C to cancel); if no browser appeared, open this address: ${url}`,
  browserCommandName: (command: string, fromEnv: boolean) => `the browser command ${q(command)}${fromEnv ? ' (from $BROWSER)' : ''}`,
  defaultBrowserName: 'the default browser',
  browserExited: (status: number) => `exited with status ${status}`,
  browserKilled: (signal: string) => `was killed by ${signal}`,
  browserNotFound: 'was not found',
  browserNotStarted: (why: string) => `could not be started (${why})`,
  browserFailed: (browser: string, reason: string) => `${browser} ${reason}: open the sign-in address in a browser yourself`,
  signOutBrowserFailed: (browser: string, reason: string) => `${browser} ${reason}: open the sign-out address in a browser yourself`,
  noWayToSignIn: (proxy: string, why: string) =>
    `cannot sign in to ${proxy} here: ${why}, and no terminal to paste a sign-in address into`,
  noWayToSignInHint: (proxy: string) =>
    `sign in ahead of time in a terminal with "burrow login ${proxy}", or give a service account (--service-account-file <path> or BURROW_SERVICE_ACCOUNT)`,
  noBrowserBecause: (reason: 'no-browser' | 'browser-none' | 'no-display') =>
    ({ 'no-browser': 'no browser (--no-browser)', 'browser-none': 'no browser (BROWSER=none)', 'no-display': 'no browser (no DISPLAY or WAYLAND_DISPLAY)' })[reason],
  openThisUrl: (proxy: string, url: string) => `to sign in to ${proxy}, open this address in a browser: ${url}`,
  waitingForBrowser: (wait: string) => `waiting up to ${wait} for the sign-in to finish (Ctrl-C to cancel)`,
  pasteInstructions: (wait: string) =>
    `if that browser is on another device, paste here the address it ends on (it contains pomerium_jwt=), or the token, then Enter (what you paste is not shown); waiting up to ${wait}`,
  waitingForSignInSpinner: 'waiting for the sign-in in your browser',
  waitedFor: (seconds: number) => `${seconds} s`,
  pasteNotUnderstood: 'that is not the address with pomerium_jwt= (nor a token); paste the full address from the browser',
  pasteOtherAttempt: "that address is the end of another sign-in (it does not come back to this one); paste the address this sign-in's browser ended on",
  pasteCutOff: 'the pasted token is cut off or damaged; copy the whole address again (it can be several KiB long)',
  pasteTooLong: 'that is far too long for a sign-in address; paste the address the browser ended on',
  pasteRefused: (problem: string, left: number) => `${problem} (${left} ${left === 1 ? 'try' : 'tries'} left)`,
  pasteGaveUp: (count: number) => `gave up after ${count} pasted addresses that were not a usable sign-in`,
  pasteGaveUpHint: 'run the command again, sign in in the browser, and paste the address it ends on (or the token in it) in full',
  pasteChecking: 'checking the pasted sign-in with the proxy',
  pasteClosed: 'no longer reading pasted addresses; still waiting for the browser to come back here',
  tokenNotWhole: 'not a whole JWT',
  tokenRefusedByProxy: (proxy: string, status: number) =>
    `${proxy} refused the pasted token (HTTP ${status}): it is expired, or from a sign-in to another proxy; sign in again and paste the new address`,
  tokenCheckFailed: (proxy: string, reason: string) => `cannot check the sign-in with ${proxy}: ${reason}`,
  cachedSignInRefused: (proxy: string, status: number | undefined) =>
    `${proxy} refused the cached sign-in${status === undefined ? '' : ` (HTTP ${status})`}; signing in again`,
  alreadySignedIn: (proxy: string, user: string | undefined, expires: string) =>
    `already signed in to ${proxy}${user ? ` as ${user}` : ''} (${expires}); burrow login --force signs in again`,
  noExpiryKnown: 'no expiry known',
  loginApiStatus: (proxy: string, status: number) => `${proxy} refused to start a sign-in (login API answered HTTP ${status})`,
  loginApiBody: (proxy: string) => `${proxy} answered the login API with something that is not a sign-in address`,
  loginApiFailed: (proxy: string, reason: string) => `cannot start a sign-in at ${proxy}: ${reason}`,
  loginApiHint: 'check that this is a Pomerium proxy (see --pomerium-url), or use --service-account',
  loginTimedOut: (proxy: string, wait: string) => `sign-in to ${proxy} did not finish within ${wait}`,
  loginTimedOutHint:
    'run the command again and finish signing in at the printed address (with --no-browser burrow opens no browser: open it on any device), or raise --login-timeout',
  loginAborted: (proxy: string) => `sign-in to ${proxy} was cancelled`,
  signedIn: (proxy: string, user: string | undefined, expires: string) =>
    `signed in to ${proxy}${user ? ` as ${user}` : ''} (${expires})`,
  tokenRejectedAfterSignIn: (proxy: string, dest: string) =>
    `${proxy} refused the token it issued moments ago for ${dest}`,
  tokenRejectedAfterSignInHint: 'the proxy may be misconfigured (check its clock and session settings); try burrow logout, then again',
  serviceAccountRejectedHint: 'the service account token was refused: check that it is valid and not expired',
  waitingForOtherSignIn: (proxy: string, pid: number) =>
    `another burrow process (pid ${pid}) is signing in to ${proxy}; waiting for it`,
  lockTimedOut: (proxy: string, pid: number, seconds: number) =>
    `gave up after ${seconds}s waiting for another burrow process (pid ${pid}) to sign in to ${proxy}`,
  lockTimedOutHint: 'finish the sign-in in the browser window that process opened, or stop it and try again',
  notSignedIn: (proxy: string) => `not signed in to ${proxy}`,
  loggedOut: (proxy: string) => `signed out of ${proxy}`,
  loggedOutAll: (count: number) => `forgot ${count} cached sign-in${count === 1 ? '' : 's'}`,
  noSignIns: 'no cached sign-ins',
  signInExpired: (proxy: string, user: string | undefined, expired: string) => `the sign-in to ${proxy}${user ? ` as ${user}` : ''} ${expired}`,
  signInsKeptIn: (location: string) => `sign-ins are kept in ${location}`,
  noSignInsIn: (location: string) => `no cached sign-ins in ${location}`,
  allSignInsExpired: 'every cached sign-in has expired',
  notSignedInHint: (proxy: string | undefined) => `run "burrow login ${proxy ?? '<proxy-url>'}" to sign in`,
  signOutOpened: (proxy: string, url: string) => `opened ${url} in your browser: sign out there to end the browser session of ${proxy} too`,
  signOutPrinted: (proxy: string, url: string) => `to end the browser session of ${proxy} too, open ${url} in a browser and sign out there`,
  logoutBrowserNeedsProxy: '--browser needs the proxy whose browser session to end',
  logoutBrowserNeedsProxyHint: 'run "burrow logout --browser <proxy-url>"',

  // --- credential store -----------------------------------------------------------------------
  invalidCredentialStore: (value: string) => `invalid credential store ${q(value)}: expected "keychain" or "file"`,
  invalidCredentialStoreHint: 'use --credential-store keychain|file or BURROW_CREDENTIAL_STORE=keychain|file',
  keychainFallback: (reason: string, dir: string) =>
    `the OS keychain is not usable (${reason}); keeping sign-ins in files under ${dir} instead`,
  keychainRequired: (reason: string) => `the OS keychain was asked for but is not usable (${reason})`,
  keychainRequiredHint:
    'unlock or start your keychain (on Linux: a Secret Service such as gnome-keyring), or use --credential-store file',
  credentialFileCorrupt: (path: string) => `ignoring the unreadable credential file ${q(path)}`,
  credentialFileRepaired: (path: string, proxy: string, mode: string) =>
    `the credential file ${q(path)} was open to other users (mode ${mode}); made it 0600. If someone else may have read it, run "burrow logout --browser ${proxy}" to discard that sign-in`,
  credentialFileNotPrivate: (path: string, mode: string, reason: string) =>
    `not using the credential file ${q(path)}: it is open to other users (mode ${mode}) and cannot be made private (${reason})`,
  credentialDirRepaired: (dir: string, mode: string) => `the directory ${q(dir)} was open to other users (mode ${mode}); made it 0700`,
  credentialDirNotPrivate: (dir: string, mode: string, reason: string) =>
    `the directory ${q(dir)} is open to other users (mode ${mode}) and cannot be made private (${reason})`,
  credentialDirNotPrivateHint: (dir: string) => `make it yours and private (chmod 700 ${q(dir)}), or set XDG_CACHE_HOME to a private directory`,
  credentialKeptInMemory: (problem: string) => `${problem}; the sign-in is kept for this process only`,
  credentialStoreUnwritableHint: 'check free space and permissions of the cache directory (burrow cache location)',
  credentialStoreFailed: (action: 'read' | 'save' | 'remove' | 'list', where: string, reason: string) =>
    `cannot ${{ read: 'read sign-ins from', save: 'save the sign-in to', remove: 'remove sign-ins from', list: 'list sign-ins in' }[action]} ${where}: ${reason}`,

  // --- forward proxy ------------------------------------------------------------------------------
  invalidForwardProxy: (source: string, reason: string) => `invalid forward proxy in ${source}: ${reason}`,
  forwardProxyForm: 'use http://[user:password@]host:port (percent-encode special characters), or --no-proxy to go direct',
  forwardProxyHint: 'check --proxy or HTTPS_PROXY/ALL_PROXY; set NO_PROXY (or --no-proxy) if the identity proxy is reachable directly',
  forwardAuth: (forward: string) => `forward proxy ${forward} requires authentication (HTTP 407)`,
  forwardAuthRefusedHint: 'it refused the user name or password in the proxy URL: check them (percent-encode special characters)',
  forwardAuthMissingHint: 'put the credentials in the proxy URL: http://user:password@host:port (percent-encode special characters)',
  forwardDenied: (forward: string, dest: string) => `forward proxy ${forward} refused the tunnel to ${dest} (HTTP 403)`,
  forwardDeniedHint: 'its access rules do not allow this host or port: ask your network admins, or set NO_PROXY if it is reachable directly',
  forwardUpstream: (forward: string, dest: string, status: number) => `forward proxy ${forward} could not reach ${dest} (HTTP ${status})`,
  forwardUpstreamHint: 'the identity proxy is down or unreachable from the forward proxy: check its address (--pomerium-url) and try again',
  forwardStatus: (forward: string, dest: string, status: number, reason: string) =>
    `forward proxy ${forward} answered the tunnel request for ${dest} with HTTP ${status}${reason ? ` ${reason}` : ''}`,
  forwardRateLimited: (forward: string, dest: string) => `forward proxy ${forward} is rate-limiting and turned down the tunnel to ${dest} (HTTP 429)`,
  forwardServerError: (forward: string, dest: string) => `forward proxy ${forward} failed with a server error on the tunnel to ${dest} (HTTP 500)`,
  forwardServerErrorHint: 'the problem is on the forward proxy\'s side: try again later, and tell your network admins if it lasts',
  forwardMalformed: (forward: string, what: string) => `forward proxy ${forward} sent a malformed answer: ${what}`,
  forwardClosed: (forward: string, dest: string) => `forward proxy ${forward} closed the connection before answering the tunnel request for ${dest}`,

  // --- established tunnels ----------------------------------------------------------------------
  tunnelBroken: (proxy: string, dest: string, reason: string) => `the tunnel to ${dest} via ${proxy} broke: ${reason}`,
  tunnelBrokenHint: 'the proxy or the network dropped the connection; run the command again',
  capsuleTooLong: (bytes: string, max: number) => `the proxy sent a DATAGRAM capsule of ${bytes} bytes (at most ${max} are accepted)`,
  capsuleNoContext: 'the proxy sent a DATAGRAM capsule without a whole context id',
  sessionLimitReached: (dest: string, limit: string) => `closed the tunnel to ${dest}: it reached --max-duration ${limit}`,
  sessionLimitHint: 'tunnels are closed at the age set with --max-duration; connect again to continue',
  tokenExpiredClose: (dest: string, age: string) => `closed the tunnel to ${dest} after ${age}: the token it was opened with expired`,
  tokenExpiredCloseHint: 'tunnels are closed when their token expires (--close-on-token-expiry); connect again to sign in anew',
  tokenWithoutExpiry: (dest: string) => `the token for ${dest} has no expiry (exp): --close-on-token-expiry cannot apply to this tunnel`,
  keepaliveLost: (seconds: number) => `no answer to keepalive pings for ${seconds} s`,
  webSocketLost: 'the connection was lost without a WebSocket close (1006)',
  webSocketClosedWhileSending: 'the WebSocket was closed while data was still being sent',
  stallSending: (seconds: number) => `the proxy took none of the data waiting to be sent for ${seconds} s (--stall-timeout)`,
  stallSilent: (seconds: number) => `nothing came back for ${seconds} s after the local side finished sending (--stall-timeout)`,
  closedBeforeData: 'it was closed from the far end before any data came back',
  closedBeforeDataHint:
    'the proxy accepted the tunnel, then it or the service behind the route hung up at once: check that the service is up and accepts connections from the proxy',
  stallHint: 'the proxy or the network stopped responding; run the command again (raise --stall-timeout for servers that stay silent longer)',
  notWebSocketHint: 'check that the URL is a WebSocket tunnel endpoint (websockify, or the proxy\'s wss:// route)',
  connectRefusedHint:
    'this proxy does not accept CONNECT tunnels; if it offers a WebSocket route for this service, use its wss:// URL as the destination',

  // --- burrow doctor ------------------------------------------------------------------------------
  doctorChecking: (dest: string, proxy: string) => `checking each step of a tunnel to ${dest} via ${proxy}`,
  /** The name a step goes by in doctor's lines (its JSON name is the `step` field). */
  doctorStep: (step: string) =>
    ({
      dns: 'name lookup',
      'forward-proxy': 'forward proxy',
      tcp: 'TCP connection',
      tls: 'TLS',
      'credential-store': 'credential store',
      'sign-in': 'cached sign-in',
      tunnel: 'tunnel',
      clock: 'clock',
    })[step] ?? String(step),
  doctorLine: (mark: string, step: string, detail: string) => `${mark} ${step}: ${detail}`,
  doctorSkipped: (failed: string) => `skipped (needs the ${failed} step, which failed)`,
  doctorPassed: (count: number) => `all ${count} checks passed`,
  doctorFailed: (steps: string) => `failed: ${steps}`,
  dnsResolved: (host: string, addresses: string) => `${host} is ${addresses}`,
  dnsLiteral: (host: string) => `${host} is an address: nothing to look up`,
  dnsForwardResolved: (forward: string, addresses: string, proxy: string) =>
    `${forward} (the forward proxy) is ${addresses}; it looks up ${proxy} itself`,
  forwardNone: 'none: burrow connects to the proxy directly',
  forwardAnswered: (forward: string, proxy: string, status: number, reason: string) =>
    `${forward} answered CONNECT ${proxy} with HTTP ${status}${reason ? ` ${reason}` : ''}`,
  tcpConnected: (address: string, took: string) => `connected to ${address} in ${took}`,
  tcpThroughForward: (forward: string) => `through forward proxy ${forward} (the step above)`,
  tlsNegotiated: (protocol: string, alpn: string, subject: string, issuer: string, validTo: string, client: string) =>
    `${protocol}, ALPN ${alpn}; certificate for ${subject} issued by ${issuer}, valid until ${validTo}; ${client}`,
  tlsNotVerified: (detail: string) => `${detail} (NOT verified: --disable-tls-verification)`,
  tlsClientCertSent: (subject: string) => `client certificate ${subject} sent`,
  tlsNoClientCert: 'no client certificate',
  tlsPlainHttp: (proxy: string) => `none: ${proxy} is plain http (the token travels unencrypted)`,
  unknownName: 'an unnamed subject',
  storeFiles: (dir: string) => `files under ${dir}`,
  storeFallback: (dir: string, reason: string) => `files under ${dir} (the OS keychain is not usable: ${reason})`,
  signInFound: (user: string | undefined, expires: string) => `${user ? `signed in as ${user}` : 'signed in'} (${expires})`,
  serviceAccountFound: 'a service account token',
  signInAccepted: (found: string) => `${found}; the proxy accepts it`,
  signInLooksWhole: (found: string) => `${found}; it looks whole (the proxy has no routes API to check it with)`,
  signInNotChecked: (found: string) => `${found}; not checked with the proxy, which could not be reached`,
  cachedSignInRejected: (proxy: string, status: number) => `${proxy} refuses the cached sign-in (HTTP ${status})`,
  serviceAccountRejected: (proxy: string, status: number) => `${proxy} refuses the service account token (HTTP ${status})`,
  cachedSignInDamaged: (proxy: string, problem: string) => `the token for ${proxy} is ${problem}`,
  doctorUdpTransportHint: 'a udp+https:// route is always checked with CONNECT-UDP: leave out --transport',
  tunnelOpened: (kind: string, dest: string) => `the proxy opened the ${kind} tunnel to ${dest} (closed again at once)`,
  clockInStep: (seconds: number) => `within ${seconds} s of the proxy's`,
  clockNoDate: 'not checked: the proxy sent no Date header',
  clockSkewed: (proxy: string, span: string, direction: 'ahead of' | 'behind') => `this machine's clock is ${span} ${direction} the clock of ${proxy} (its Date header)`,
  clockSkewedHint: (margin: number) =>
    `set this machine's clock right (turn on NTP, e.g. timedatectl set-ntp true): burrow judges when a token expires by it, allowing ${margin} s of difference, and TLS checks certificates' dates with it`,
  // --- burrow routes (the proxy's routes API) ----------------------------------------------------
  routesNotJson: (proxy: string, start: string) =>
    `${proxy} answered the routes API with something that is not JSON (${start === '' ? 'an empty body' : `it starts ${q(start)}`})`,
  routesBadShape: (proxy: string, what: string) => `${proxy} answered the routes API with JSON that is not a list of routes: ${what}`,
  routesNoList: 'it has no "routes" array',
  routesNotObject: (n: number) => `route ${n} is not an object`,
  routesNoFrom: (n: number) => `route ${n} has no "from" address`,
  routesTooLarge: (proxy: string, mib: number) => `${proxy} answered the routes API with more than ${mib} MiB`,
  routesProtocolHint: "check that the address is the proxy's own (Pomerium v0.29 or newer), not a page or another service in front of it",
  routesAborted: (proxy: string) => `stopped asking ${proxy} for its routes`,
  routesTimedOut: (proxy: string, seconds: number) => `${proxy} did not answer the routes API within ${seconds}s`,
  routesTimedOutHint: 'try again, or allow longer with --connect-timeout',
  routesFailed: (proxy: string, reason: string) => `the routes API of ${proxy} failed: ${reason}`,
  routesSignInRequired: (proxy: string, status: number) => `sign-in required by ${proxy} for its routes API (HTTP ${status})`,
  routesRejectedAfterSignIn: (proxy: string) => `${proxy} refused the token it issued moments ago for its routes API`,
  routesDenied: (proxy: string) => `access denied by ${proxy} to its routes API (HTTP 403)`,
  routesDeniedHint: "ask the proxy's admins whether its routes portal is open to you; burrow tcp, udp and ssh-config work without the list",
  noRoutesApi: (proxy: string) => `${proxy} has no routes API (HTTP 404): it is older than Pomerium v0.29, or its routes portal is turned off`,
  noRoutesApiHint: "ask the proxy's admins for the routes' addresses; burrow tcp, udp and ssh-config work without the list",
  routesStatus: (proxy: string, status: number) => `${proxy} answered the routes API with HTTP ${status}`,
  routesServerErrorHint: "the problem is on the proxy's side: try again later",
  routesNone: (proxy: string, type: string | undefined) => `${proxy} lists no ${type === undefined ? '' : `${type} `}routes for you`,
  routesHttpHint: (proxy: string) => `http routes open in a browser; for curl and scripts, "burrow token ${proxy}" prints the token to send (burrow token --help)`,
  /** The command column of a route burrow cannot reach (an unknown type, a `from` it cannot parse). */
  routesNoCommand: '-',
  routesSshSkipped: (skipped: number, total: number, proxy: string) =>
    `skipped ${skipped} of the ${total} routes ${proxy} lists: not tcp+https://host:22, or a host already written`,
  fromRoutesHostHint: '--from-routes names each Host after its route: leave out --host',
  fromRoutesProxyHint: '--from-routes takes the proxy as its argument: leave out --pomerium-url',
  routesNoSsh: (proxy: string) => `${proxy} lists no tcp+https://host:22 routes for you: no Host blocks written`,

  // --- the config file (cli/config.ts, burrow config) --------------------------------------------
  configAt: (path: string, line: number, message: string) => `${path}:${line}: ${message}`,
  /** A part of the bundle (external.ts `importPart`) is missing: a build left half done. */
  partMissing: (path: string) => `burrow is not built: ${path} is missing`,
  partMissingHint: (root: string) => `run "npm run build" in ${root} (or "npm ci", which builds too) and run burrow again`,
  configMissing: (path: string) => `the config file ${path} (BURROW_CONFIG) does not exist`,
  configMissingHint: 'create it, or unset BURROW_CONFIG to use the default file',
  configUnreadable: (path: string, reason: string) => `cannot read the config file ${path}: ${reason}`,
  configUnreadableHint: 'make it a readable file, or set BURROW_CONFIG to another one',
  configBadYaml: (reason: string) => `not valid YAML: ${reason}`,
  configBadKey: (where: string) => `the keys of ${where} must be plain words`,
  configDuplicate: (key: string, firstLine: number) => `${key} is set twice (first on line ${firstLine})`,
  configNotASetting: (key: string) => `${key} is not a setting`,
  configDidYouMean: (key: string) => `did you mean ${key}?`,
  configTopHint: (suggestion: string | undefined) =>
    suggestion ? `did you mean ${suggestion}?` : 'the file has two sections, defaults: (flags for every command) and tunnels: (named tunnels)',
  configSettingsHint: 'the settings are the long flags "burrow config show" lists, spelled without --',
  configRefused: (key: string, why: string) => `${key} cannot be set in a config file: ${why}`,
  configSecret: 'it is a secret, and the config file is a plain file',
  configSafetySwitch: 'it turns a safety check off, which must be asked for on each command line',
  configOneRun: 'it belongs to one run of a command, not to all of them',
  configServiceAccountHint: 'set service-account-file to a file that holds the token (or BURROW_SERVICE_ACCOUNT in the environment)',
  configOnCommandLineHint: 'give it on the command line',
  configInTunnelHint: 'set it in a tunnels: entry, or give it on the command line',
  configWrongType: (key: string, expected: string, got: string) => `${key} must be ${expected}, not ${got}`,
  configKindMapping: 'a mapping (key: value lines)',
  configKindList: 'a list',
  configKindString: 'a string',
  configKindNumber: 'a number',
  configKindEmpty: 'empty',
  configKindOther: 'that',
  configKindPath: 'a path',
  configKindValue: 'a string or a number',
  configKindValues: 'a string, a number or a list of them',
  configBadValue: (key: string, reason: string) => `${key}: ${reason}`,
  configConflict: (a: string, b: string) => `${a} and ${b} cannot both be set`,
  configTunnelName: (name: string) => `the tunnel name ${q(name)} must be letters, digits, ".", "_" or "-"`,
  configNeedsDestination: (key: string) => `${key} needs a destination`,
  configNotForFamily: (key: string, family: 'tcp' | 'udp') => `${key} is not a setting of a ${family} tunnel (burrow ${family} does not take it)`,
  upNoTunnels: (path: string) => `no tunnels to run: ${path} has no tunnels: section`,
  upNoConfig: (path: string) => `no tunnels to run: there is no config file at ${path}`,
  upNoTunnelsHint: 'add a tunnels: section (name: { destination: host:port, listen: :PORT }) to the file "burrow config path" prints',
  upUnknownTunnel: (name: string, path: string, known: string) => `no tunnel named ${q(name)} in ${path} (it has ${known})`,
  upUnknownTunnelHint: 'name tunnels as they are under tunnels: ("burrow config show" lists them), or give no name to run every one',
  upStarted: (running: number, total: number) =>
    running === total ? `${running} ${running === 1 ? 'tunnel' : 'tunnels'} up` : `${running} of ${total} tunnels up (the others could not start: see above)`,
  upNothingStarted: 'no tunnel could start (see above)',
  upReloading: (path: string) => `reloading ${path}`,
  upReloadFailed: (reason: string, running: number) => `not reloaded: ${reason}; the ${running} running ${running === 1 ? 'tunnel is' : 'tunnels are'} left as they were`,
  upReloaded: (path: string, counts: { started: number; stopped: number; restarted: number; unchanged: number; failed: number }) =>
    `reloaded ${path}: ${counts.started} started, ${counts.stopped} stopped, ${counts.restarted} restarted, ${counts.unchanged} unchanged` +
    (counts.failed > 0 ? ` (${counts.failed} could not start: see above)` : ''),
  upStopping: 'stopping: it is no longer in the config file',
  upRestarting: 'restarting: its settings changed',
  upServiceWritten: (kind: 'systemd' | 'launchd') =>
    kind === 'systemd'
      ? 'save it as ~/.config/systemd/user/burrow.service, then: systemctl --user daemon-reload && systemctl --user enable --now burrow.service (reload after editing the config file: systemctl --user reload burrow.service)'
      : 'save it as ~/Library/LaunchAgents/burrow.up.plist, then: launchctl bootstrap gui/$(id -u) ~/Library/LaunchAgents/burrow.up.plist (reload after editing the config file: launchctl kill HUP gui/$(id -u)/burrow.up)',
  configListenTaken: (key: string, listen: string, other: string, line: number) => `${key} ${listen} is the address ${other} (line ${line}) listens on`,
  configListenTakenHint: 'give each tunnel its own port (or leave listen out for a free one)',
  configTunnelStdio: (key: string) => `${key} must be a local address: a named tunnel cannot use stdin/stdout`,
  configBadEnv: (variable: string, reason: string) => `${variable}: ${reason}`,
  configEnvHint: (variable: string) => `set ${variable} to one of those, or unset it`,
  configFixHint: 'fix that line, then run "burrow config check"',
  configChecked: (path: string, defaults: number, tunnels: number) =>
    `${path}: ok (${defaults} ${defaults === 1 ? 'default' : 'defaults'}, ${tunnels} ${tunnels === 1 ? 'tunnel' : 'tunnels'})`,
  configNone: (path: string) => `no config file at ${path}: every command uses its built-in defaults`,
  // --- kubectl (burrow k8s) -----------------------------------------------------------------------
  execInfoNotJson: 'KUBERNETES_EXEC_INFO (set by kubectl for its credential plugins) is not valid JSON',
  execInfoNotObject: 'KUBERNETES_EXEC_INFO (set by kubectl for its credential plugins) is not an ExecCredential object',
  execInfoHint: 'let kubectl run burrow k8s exec-credential (the exec section of a kubeconfig user), or unset KUBERNETES_EXEC_INFO to run it by hand',
  execInfoApiVersion: (version: string) => `kubectl asks for an ExecCredential of apiVersion ${q(version)}, which burrow does not know`,
  execInfoApiVersionHint: (known: string) => `set the exec apiVersion of the kubeconfig user to ${known}`,
  k8sServerUrlForm: 'give the Kubernetes API address as kubectl has it, https://host[:port][/path], for example https://k8s.corp.example.com',
  /** `cached`: what became of the cached sign-in (none; refused with the proxy's status; not a whole token). */
  k8sNotInteractive: (proxy: string, cached: { refused: number } | 'none' | 'damaged') =>
    `${cached === 'none' ? `not signed in to ${proxy}` : cached === 'damaged' ? `the cached sign-in for ${proxy} is damaged` : `${proxy} refused the cached sign-in (HTTP ${cached.refused})`}, and kubectl runs burrow non-interactively (interactiveMode Never, or no terminal on its stdin), so no sign-in can start`,
  k8sNotInteractiveHint: (proxy: string) => `sign in first with "burrow login ${proxy}" in a terminal, then run kubectl again`,
  badKubeName: (name: string) => `invalid --name ${q(name)}: it must be one line of printable characters`,
  badKubeNameHint: 'for example --name corp-prod',
  kubeconfigHeader: (version: string, server: string) => `burrow ${version}: kubectl to ${server} through the identity-aware proxy.`,
  kubeconfigUse: (argument: string) =>
    `Save and use, e.g.: burrow k8s kubeconfig ${argument} > ~/.kube/burrow.yaml; KUBECONFIG=~/.kube/config:~/.kube/burrow.yaml kubectl get pods`,
} as const;
