/**
 * The real kubectl, for the `burrow k8s` tests: found on the PATH (a missing one is a clear
 * failure, never a skip), given a kubeconfig whose user runs burrow as its exec credential
 * plugin, and run either with a pipe as stdin (kubectl then tells the plugin it is not
 * interactive) or on a real pseudo-terminal (terminal.ts), where it is. Its discovery cache
 * goes to a temporary HOME. Processes are killed by their bound or by stopAll()/stopAllTerminals().
 */
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './burrow.js';
import { runInTerminal, type Terminal } from './terminal.js';

/** ExecCredential v1 and `interactiveMode` came with kubectl 1.22. */
const MIN_MINOR = 22;
let checked: string | undefined;

/**
 * The kubectl on the PATH; throws (in CI and locally alike) when there is none, or when it is
 * older than 1.22 (Debian 12's kubernetes-client is 1.20: it knows neither ExecCredential v1
 * nor interactiveMode).
 */
export function requireKubectl(): string {
  if (checked !== undefined) return checked;
  const found = spawnSync('sh', ['-c', 'command -v kubectl'], { encoding: 'utf8' }).stdout.trim();
  const where = process.env.CI === 'true' ? 'CI: .ci/run must install it' : 'install it';
  if (found === '') throw new Error(`kubectl not found; the burrow k8s tests need it (${where}: apt-get install kubernetes-client)`);
  const version = spawnSync(found, ['version', '--client', '-o', 'json'], { encoding: 'utf8', timeout: 20_000 }).stdout;
  let client: { major?: string; minor?: string; gitVersion?: string } = {};
  try {
    client = (JSON.parse(version) as { clientVersion?: typeof client }).clientVersion ?? {};
  } catch {
    // Judged below: no version is too old a version.
  }
  if (client.major !== '1' || !(Number.parseInt(client.minor ?? '', 10) >= MIN_MINOR)) {
    throw new Error(`${found} is kubectl ${client.gitVersion ?? '(version unknown)'}; the burrow k8s tests need 1.${MIN_MINOR} or newer (${where})`);
  }
  checked = found;
  return found;
}

export interface KubeconfigOptions {
  /** The API server's URL (through the proxy). */
  server: string;
  /** The CA kubectl trusts for it. */
  ca: string;
  /** The exec plugin: apiVersion, command and arguments, interactiveMode. */
  apiVersion: 'client.authentication.k8s.io/v1' | 'client.authentication.k8s.io/v1beta1';
  command: string;
  args: string[];
  interactiveMode: 'Never' | 'IfAvailable' | 'Always';
}

/** Writes a kubeconfig (JSON is YAML) into a fresh directory and returns its path. */
export function writeKubeconfig(options: KubeconfigOptions): string {
  const path = join(tempDir('burrow-kube-'), 'config');
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'test', cluster: { server: options.server, 'certificate-authority': options.ca } }],
    users: [
      {
        name: 'test',
        user: { exec: { apiVersion: options.apiVersion, command: options.command, args: options.args, interactiveMode: options.interactiveMode, provideClusterInfo: false } },
      },
    ],
    contexts: [{ name: 'test', context: { cluster: 'test', user: 'test' } }],
    'current-context': 'test',
  };
  writeFileSync(path, `${JSON.stringify(config, null, 2)}\n`);
  return path;
}

/** What kubectl runs with: its own HOME (discovery cache), the kubeconfig, then `env`. */
export function kubectlEnv(kubeconfig: string, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: tempDir('burrow-kube-home-'), KUBECONFIG: kubeconfig, BURROW_CREDENTIAL_STORE: 'file', NO_COLOR: '1', ...env };
}

/** Runs kubectl with stdin a pipe (not a terminal), bounded by `timeoutMs`. */
export async function runKubectl(
  args: string[],
  kubeconfig: string,
  env: NodeJS.ProcessEnv,
  timeoutMs = 30_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(requireKubectl(), args, { env: kubectlEnv(kubeconfig, env), stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin.on('error', () => {});
  child.stdin.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number>((resolve) => child.once('exit', (c, signal) => resolve(c ?? (signal ? 128 : 1))));
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** Runs kubectl on a pseudo-terminal (kubectl then tells the plugin it is interactive), bounded by `timeoutMs`. */
export async function kubectlInTerminal(args: string[], kubeconfig: string, env: NodeJS.ProcessEnv, timeoutMs = 30_000): Promise<{ code: number; screen: string }> {
  const terminal: Terminal = runInTerminal([requireKubectl(), ...args], kubectlEnv(kubeconfig, env));
  const timer = setTimeout(() => void terminal.stop(), timeoutMs);
  const code = await terminal.exited;
  clearTimeout(timer);
  return { code, screen: terminal.screen() };
}
