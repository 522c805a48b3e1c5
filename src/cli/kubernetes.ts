/**
 * What kubectl and burrow say to each other (client-go's exec credential plugins,
 * https://kubernetes.io/docs/reference/access-authn-authz/authentication/#client-go-credential-plugins),
 * as pure functions: reading `KUBERNETES_EXEC_INFO`, the ExecCredential burrow answers with,
 * the server URL a kubeconfig names, and the kubeconfig `burrow k8s kubeconfig` prints.
 */
import { UsageError } from '../errors.js';
import { text } from '../output/messages.js';
import type { ProxyEndpoint } from '../target.js';
import { parseProxyOrigin } from './destination.js';

/** The ExecCredential versions kubectl may ask for, newest first (v1alpha1 left Kubernetes in 1.24). */
export const EXEC_API_VERSIONS = ['client.authentication.k8s.io/v1', 'client.authentication.k8s.io/v1beta1'] as const;
export type ExecApiVersion = (typeof EXEC_API_VERSIONS)[number];

export interface ExecInfo {
  /** The version to answer with: kubectl refuses an answer of another. */
  apiVersion: ExecApiVersion;
  /**
   * `spec.interactive`: whether kubectl gave the plugin a terminal (its interactiveMode, and
   * whether its stdin is one). Undefined when kubectl did not say (burrow run by hand).
   */
  interactive: boolean | undefined;
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Reads `KUBERNETES_EXEC_INFO` (`{"kind":"ExecCredential","apiVersion":…,"spec":{"interactive":…}}`).
 * Absent: v1, interactivity unknown. Not JSON, not an object, or a version burrow does not
 * know: a UsageError (`BURROW_EXEC_INFO`), one line.
 */
export function parseExecInfo(raw: string | undefined): ExecInfo {
  if (raw === undefined || raw.trim() === '') return { apiVersion: EXEC_API_VERSIONS[0], interactive: undefined };
  const fail = (message: string, hint: string = text.execInfoHint, cause?: unknown) => new UsageError(message, { code: 'BURROW_EXEC_INFO', hint, cause });
  let info: unknown;
  try {
    info = JSON.parse(raw);
  } catch (error) {
    throw fail(text.execInfoNotJson, text.execInfoHint, error);
  }
  if (!isObject(info)) throw fail(text.execInfoNotObject);
  const apiVersion = info.apiVersion;
  const known = (EXEC_API_VERSIONS as readonly unknown[]).includes(apiVersion);
  if (!known) {
    throw fail(text.execInfoApiVersion(typeof apiVersion === 'string' ? apiVersion : JSON.stringify(apiVersion) ?? 'undefined'), text.execInfoApiVersionHint(EXEC_API_VERSIONS.join(' or ')));
  }
  const spec = isObject(info.spec) ? info.spec : {};
  return { apiVersion: apiVersion as ExecApiVersion, interactive: typeof spec.interactive === 'boolean' ? spec.interactive : undefined };
}

/**
 * The ExecCredential for `token`, as one JSON line: `status.token` is `Pomerium-<jwt>` (kubectl
 * sends `Authorization: Bearer Pomerium-<jwt>`, which Pomerium reads as its own token).
 * `expiresAt` (seconds, skew margin already taken off, see auth/jwt.ts) becomes
 * `expirationTimestamp` in RFC 3339, whole seconds; without it there is none, and kubectl
 * keeps the token until the proxy answers 401 and then asks again.
 */
export function execCredential(apiVersion: ExecApiVersion, token: string, expiresAt: number | undefined): string {
  const status: Record<string, string> = { token: `Pomerium-${token}` };
  if (expiresAt !== undefined && Number.isFinite(expiresAt)) {
    status.expirationTimestamp = new Date(Math.floor(expiresAt) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  }
  return `${JSON.stringify({ apiVersion, kind: 'ExecCredential', status })}\n`;
}

export interface KubeServer {
  /** The API server's URL as kubectl is to use it (a path kept: prefix routes, Rancher-style URLs). */
  server: string;
  /** Its origin: the identity-aware proxy burrow signs in to. */
  proxy: ProxyEndpoint;
  /** `host[:port]`, the default name of the cluster, user and context. */
  name: string;
}

/** Parses `<server-url>`: an http(s) URL, optionally with a path, without credentials, query or fragment. */
export function parseServerUrl(input: string): KubeServer {
  const what = 'server URL';
  const fail = (reason: string) => new UsageError(text.invalidUrl(what, input, reason), { code: 'BURROW_INVALID_URL', hint: text.k8sServerUrlForm });
  const trimmed = input.trim();
  if (!/^https?:\/\//i.test(trimmed)) throw fail(trimmed === '' ? 'it is empty' : 'it must start with https://');
  let url: URL;
  try {
    url = new URL(trimmed);
  } catch {
    throw fail('it is not a valid URL');
  }
  if (url.username || url.password) throw fail('credentials in the URL are not allowed');
  if (url.search || url.hash) throw fail('it must not have a query or fragment');
  // The host checks (and their wording) are the proxy's.
  const proxy = parseProxyOrigin(url.origin, what);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/+$/, '');
  return { server: `${url.origin}${path}`, proxy, name: url.host };
}

/** A kubeconfig name (`--name`): one line of printable characters. */
export function parseKubeName(value: string): string {
  const name = value.trim();
  if (name === '' || name.length > 253 || /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(name)) throw new UsageError(text.badKubeName(value), { hint: text.badKubeNameHint });
  return name;
}

export interface KubeconfigOptions {
  server: string;
  name: string;
  /** The command to run, absolute: `[node, burrow.js]` or `[burrow]`. */
  command: readonly string[];
  /** exec-credential's arguments after `k8s exec-credential <server>`. */
  args: readonly string[];
  /** Lines for the comment at the top (no line breaks in them). */
  comment: readonly string[];
  cluster?: { certificateAuthority?: string; certificateAuthorityData?: string; insecureSkipTlsVerify?: boolean; proxyUrl?: string };
  user?: { clientCertificate?: string; clientKey?: string };
}

/** A YAML scalar: every string as a JSON string (valid YAML, whatever it holds). */
const scalar = (value: string | boolean) => (typeof value === 'boolean' ? String(value) : JSON.stringify(value));

/**
 * A whole kubeconfig (cluster, user with the exec plugin, context, current-context), ready to use
 * with `KUBECONFIG=<file>` or to merge (`KUBECONFIG=a:b kubectl config view --flatten`).
 */
export function kubeconfigYaml(options: KubeconfigOptions): string {
  const [command = '', ...commandArgs] = options.command;
  const args = [...commandArgs, 'k8s', 'exec-credential', options.server, ...options.args];
  const name = scalar(options.name);
  const lines = [...options.comment.map((line) => `# ${line}`), 'apiVersion: v1', 'kind: Config', 'clusters:', `- name: ${name}`, '  cluster:', `    server: ${scalar(options.server)}`];
  const cluster = options.cluster ?? {};
  if (cluster.certificateAuthority !== undefined) lines.push(`    certificate-authority: ${scalar(cluster.certificateAuthority)}`);
  if (cluster.certificateAuthorityData !== undefined) lines.push(`    certificate-authority-data: ${scalar(cluster.certificateAuthorityData)}`);
  if (cluster.insecureSkipTlsVerify) lines.push('    insecure-skip-tls-verify: true');
  if (cluster.proxyUrl !== undefined) lines.push(`    proxy-url: ${scalar(cluster.proxyUrl)}`);
  lines.push('users:', `- name: ${name}`, '  user:');
  const user = options.user ?? {};
  if (user.clientCertificate !== undefined) lines.push(`    client-certificate: ${scalar(user.clientCertificate)}`);
  if (user.clientKey !== undefined) lines.push(`    client-key: ${scalar(user.clientKey)}`);
  lines.push(
    '    exec:',
    `      apiVersion: ${scalar(EXEC_API_VERSIONS[0])}`,
    `      command: ${scalar(command)}`,
    '      args:',
    ...args.map((arg) => `      - ${scalar(arg)}`),
    // A browser sign-in needs no terminal, but pasting the final address back does.
    '      interactiveMode: "IfAvailable"',
    '      provideClusterInfo: false',
    'contexts:',
    `- name: ${name}`,
    '  context:',
    `    cluster: ${name}`,
    `    user: ${name}`,
    `current-context: ${name}`,
  );
  return `${lines.join('\n')}\n`;
}
