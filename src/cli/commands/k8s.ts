/**
 * `burrow k8s …`: kubectl through an identity-aware proxy, as a client-go exec credential plugin.
 *
 *   exec-credential <server-url>      one ExecCredential JSON line on stdout (status.token
 *                                     `Pomerium-<jwt>`) for the proxy at the server URL's origin
 *   flush-credentials [server-url]    forget the sign-in for that proxy (or every one), as logout
 *   kubeconfig <server-url> [--name]  a kubeconfig whose user runs exec-credential
 *
 * exec-credential answers with the apiVersion kubectl asks for (KUBERNETES_EXEC_INFO), and
 * never opens a browser or reads a terminal when kubectl says it is not interactive. A cached
 * token is checked with the proxy's routes API (a request that needs a session) unless the proxy
 * accepted it moments ago (auth/check-memo.ts); one the proxy refuses is forgotten and replaced
 * by a sign-in, one at a time across processes (auth/credentials.ts, lock.ts).
 */
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { forgetAccepted, memoPath, recentlyAccepted, rememberAccepted } from '../../auth/check-memo.js';
import { tokenInfo } from '../../auth/jwt.js';
import { checkToken } from '../../auth/verify.js';
import { LoginError } from '../../errors.js';
import { text } from '../../output/messages.js';
import { cacheDir } from '../../store/cache-dir.js';
import { addFlags, checkValues, defaultValues } from '../flags.js';
import { execCredential, kubeconfigYaml, parseExecInfo, parseKubeName, parseServerUrl } from '../kubernetes.js';
import { serviceAccountToken, type ServiceAccountValues } from '../options.js';
import { commandLogger, type LogValues, proxyAccess, type ProxyAccessValues } from '../proxy-access.js';
import type { Runtime } from '../runtime.js';
import type { SignInValues } from '../sign-in.js';
import { forgetSignIns } from './logout.js';
import { passedOn } from './ssh-config.js';
import { inheritedValues } from '../config.js';

interface ExecValues extends ProxyAccessValues, LogValues, ServiceAccountValues {}

interface KubeconfigValues extends Partial<ProxyAccessValues>, ServiceAccountValues {
  name?: string;
}

/** Where the memos of tokens the proxy just accepted live. */
const checksDir = (runtime: Runtime) => join(cacheDir(runtime.env), 'checks');

export function registerK8s(program: Command, runtime: Runtime): void {
  const k8s = program.command('k8s').description('kubectl through the proxy: a credential plugin for kubeconfig users, and the kubeconfig to use it');

  const exec = k8s
    .command('exec-credential')
    .description('print the ExecCredential kubectl asks its exec plugin for (run by kubectl; signs in when needed)')
    .argument('<server-url>', 'the Kubernetes API address behind the proxy, as the kubeconfig cluster has it');
  addFlags(exec, 'k8s exec-credential');
  exec.addHelpText('after', '\nExamples:\n  $ burrow k8s kubeconfig https://k8s.corp.example.com > ~/.kube/burrow.yaml   # writes a user that runs it\n');
  exec.action(async (input: string, values: ExecValues) => {
    // What kubectl asked for first: a bad KUBERNETES_EXEC_INFO is the only line.
    const info = parseExecInfo(runtime.env.KUBERNETES_EXEC_INFO);
    const { proxy } = parseServerUrl(input);
    const logger = commandLogger(values, runtime, 'warn');
    const serviceAccount = serviceAccountToken(values, runtime.env);
    const { tokens, route } = proxyAccess(proxy, values, runtime, logger, serviceAccount);
    const answer = (token: string) => void runtime.stdout.write(execCredential(info.apiVersion, token, tokenInfo(token).expiresAt));
    // A machine token is used as is (kubectl reports what the proxy says of it).
    if (serviceAccount !== undefined) return answer(serviceAccount);

    const stop = new AbortController();
    const off = runtime.onSignal(() => stop.abort());
    try {
      const memo = memoPath(checksDir(runtime), proxy.origin);
      const cached = await tokens.get(proxy);
      let refused: { token: string; status: number | undefined } | undefined;
      if (cached !== undefined) {
        if (await recentlyAccepted(memo, cached, Date.now())) return answer(cached);
        const verdict = await checkToken({ proxy, route, signal: stop.signal }, cached);
        if (verdict.ok) {
          // A proxy too old for the routes API only saw the token's shape: nothing to remember.
          if (verdict.checkedBy === 'proxy') await rememberAccepted(memo, cached, Date.now());
          return answer(cached);
        }
        refused = { token: cached, status: verdict.status };
      }
      if (info.interactive === false) {
        if (refused) await tokens.forget(proxy.origin, refused.token);
        const cached = refused === undefined ? 'none' : refused.status === undefined ? 'damaged' : { refused: refused.status };
        throw new LoginError('BURROW_LOGIN_UNAVAILABLE', text.k8sNotInteractive(proxy.origin, cached), {
          hint: text.k8sNotInteractiveHint(proxy.origin),
        });
      }
      // Forgets the refused token and signs in, unless another process just did.
      return answer(await tokens.renew(proxy, refused?.token, stop.signal, refused?.status));
    } finally {
      off();
    }
  });

  const flush = k8s
    .command('flush-credentials')
    .description('forget the cached sign-in for the proxy of a Kubernetes API, or every cached sign-in (as burrow logout)')
    .argument('[server-url]', 'the Kubernetes API address behind the proxy (default: all)');
  addFlags(flush, 'k8s flush-credentials');
  flush.action(async (input: string | undefined, values: SignInValues & { json?: boolean }) => {
    const logger = commandLogger({ json: values.json }, runtime, 'info');
    const proxy = input === undefined ? undefined : parseServerUrl(input).proxy;
    const forgotten = await forgetSignIns(proxy, values, runtime, logger);
    await forgetAccepted(proxy === undefined ? checksDir(runtime) : memoPath(checksDir(runtime), proxy.origin));
    if (values.json) runtime.stdout.write(`${JSON.stringify({ signed_out: forgotten })}\n`);
  });

  const kubeconfig = k8s
    .command('kubeconfig')
    .description('print a kubeconfig (cluster, user, context) whose user signs in through burrow')
    .argument('<server-url>', 'the Kubernetes API address behind the proxy, https://host[:port][/path]');
  addFlags(kubeconfig, 'k8s kubeconfig');
  kubeconfig.addHelpText(
    'after',
    `
Examples:
  $ burrow k8s kubeconfig https://k8s.corp.example.com > ~/.kube/burrow.yaml
  $ KUBECONFIG=~/.kube/config:~/.kube/burrow.yaml kubectl get pods
  $ burrow k8s kubeconfig https://k8s.corp.example.com --name corp --alternate-ca-path corp-ca.pem
`,
  );
  kubeconfig.action((input: string, given: KubeconfigValues, self: Command) => {
    runtime.stdout.write(kubeconfigFor(input, given, runtime, inheritedValues(self, runtime.env)));
  });
}

/**
 * The kubeconfig `burrow k8s kubeconfig` prints; every value is checked now, not at every kubectl.
 * `inherited`: option values exec-credential finds by itself (environment, default config
 * file), left out of its arguments; kubectl's own cluster settings (its CA, its proxy) keep them.
 */
export function kubeconfigFor(input: string, given: KubeconfigValues, runtime: Runtime, inherited: ReadonlySet<string> = new Set()): string {
  const values = { ...defaultValues('k8s kubeconfig'), ...given } as KubeconfigValues & Record<string, unknown>;
  const server = parseServerUrl(input);
  checkValues('k8s kubeconfig', values);
  // What exec-credential will build from them (TLS files readable, a forward proxy that parses).
  proxyAccess(server.proxy, { connectTimeout: '30', ...values } as ProxyAccessValues, runtime, commandLogger({}, runtime, 'warn'));
  // kubectl reaches the same proxy: it needs the same trust, client certificate and forward proxy.
  const caCert = typeof values.caCert === 'string' ? values.caCert.trim() : undefined;
  return kubeconfigYaml({
    server: server.server,
    name: values.name === undefined ? server.name : parseKubeName(values.name),
    command: runtime.selfCommand(),
    args: passedOn(values, 'k8s kubeconfig', inherited),
    comment: [text.kubeconfigHeader(runtime.version, server.server), text.kubeconfigUse(input.trim())],
    cluster: {
      ...(typeof values.alternateCaPath === 'string' ? { certificateAuthority: resolve(values.alternateCaPath) } : {}),
      ...(caCert === undefined ? {} : { certificateAuthorityData: caCert.startsWith('-----BEGIN') ? Buffer.from(caCert, 'utf8').toString('base64') : caCert }),
      ...(values.disableTlsVerification ? { insecureSkipTlsVerify: true } : {}),
      ...(typeof values.proxy === 'string' ? { proxyUrl: values.proxy.trim() } : {}),
    },
    user: {
      ...(typeof values.clientCert === 'string' ? { clientCertificate: resolve(values.clientCert) } : {}),
      ...(typeof values.clientKey === 'string' ? { clientKey: resolve(values.clientKey) } : {}),
    },
  });
}
