/**
 * The wiring every command that reaches a proxy shares: its logger, and its `ProxyAccess`
 * (TLS trust, forward proxy, time allowed, extra headers, token source) built from the
 * command's flags and the environment. A new proxy-reaching command calls these two.
 */
import { forwardProxyFor, type ProxySettingValues } from '../net/proxy-env.js';
import type { RouteOptions } from '../net/route.js';
import { buildTls, type TlsFlags } from '../net/tls.js';
import { createLogger, type Logger, type LogLevel } from '../output/log.js';
import { text } from '../output/messages.js';
import { isLoopback, type ProxyEndpoint } from '../target.js';
import type { ProxyAccess } from '../tunnel/access.js';
import { connectTimeout, logLevel, parseHeaders } from './options.js';
import type { Runtime } from './runtime.js';
import { createCredentials, type CredentialsPool, type SignInValues, signInSettings } from './sign-in.js';

export interface LogValues {
  verbose?: boolean;
  logLevel?: LogLevel;
  json?: boolean;
}

/**
 * The command's logger on the runtime's stderr, at the level its flags ask for (else `fallback`);
 * `tunnel` names the tunnel of `burrow up` it speaks for.
 */
export function commandLogger(values: LogValues, runtime: Runtime, fallback: LogLevel, tunnel?: string): Logger {
  return createLogger({ level: logLevel(values, fallback), json: values.json, stream: runtime.stderr, env: runtime.env, tunnel });
}

export interface ProxyAccessValues extends TlsFlags, SignInValues, ProxySettingValues {
  connectTimeout: string;
  /** `--header`, for the commands that take it. */
  header?: string[];
}

/**
 * Validates the flags that say how to reach `proxy` and builds its access. `serviceAccount`
 * is the machine token, if the command takes one and one was given. With a `pool` (`burrow up`),
 * sign-ins come from the pool's token source for the proxy, shared with the process's other tunnels.
 */
export function proxyAccess(
  proxy: ProxyEndpoint,
  values: ProxyAccessValues,
  runtime: Runtime,
  logger: Logger,
  serviceAccount: string | undefined = undefined,
  pool: CredentialsPool | undefined = undefined,
): ProxyAccess {
  const connectTimeoutMs = connectTimeout(values.connectTimeout);
  const signIn = signInSettings(values);
  const forward = forwardProxyFor(proxy, values, runtime.env);
  // TLS settings also serve an https:// forward proxy in front of a plain-http identity proxy.
  const tls = proxy.scheme === 'https' || forward?.scheme === 'https' ? buildTls(values, runtime.env) : undefined;
  const headers = parseHeaders(values.header ?? []);
  const route: RouteOptions = { tls, forward, connectTimeoutMs, userAgent: `burrow/${runtime.version}`, headers };
  const make = (says: Logger) => createCredentials({ serviceAccount, settings: signIn, route, runtime, logger: says });
  const tokens = pool && serviceAccount === undefined ? pool.for(proxy.origin, make) : make(logger);
  return { proxy, route, logger, tokens };
}

/**
 * The lines a command that opens tunnels says about how it reaches the proxy, once every flag
 * has been validated (a usage error stays the only line).
 */
export function announceRoute(access: ProxyAccess, values: TlsFlags): void {
  const { proxy, route, logger } = access;
  if (route.forward) logger.debug(`reaching ${proxy.origin} through forward proxy ${route.forward.origin}`);
  if (values.disableTlsVerification) logger.warn(text.tlsDisabledWarning);
  if (proxy.scheme === 'http' && !isLoopback(proxy.host)) logger.warn(text.plainHttpWarning(proxy.origin));
}
