/**
 * `burrow ssh-config <host pattern | proxy URL>` prints a ready `~/.ssh/config` block whose
 * ProxyCommand runs this very burrow (absolute paths, so ssh's PATH does not matter), with the
 * flags given here passed on, plus keepalives so idle sessions survive NAT and load balancers.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { buildTls, type TlsFlags } from '../../net/tls.js';
import { text } from '../../output/messages.js';
import { parseProxyUrl } from '../destination.js';
import { addSessionLimitOptions, addSignInOptions, addTlsOptions, DEFAULT_STALL_TIMEOUT, sessionLimits, type SessionLimitValues, stallTimeout } from '../options.js';
import type { Runtime } from '../runtime.js';
import { type SignInValues, signInSettings } from '../sign-in.js';

interface SshConfigValues extends TlsFlags, SignInValues, SessionLimitValues {
  host?: string;
  user?: string;
  pomeriumUrl?: string;
  serviceAccountFile?: string;
  serverAliveInterval: string;
}

/** ssh_config host patterns: names with * ? and ! negation, several separated by spaces. */
const HOST_PATTERN = /^!?[A-Za-z0-9*?._-]+(?: +!?[A-Za-z0-9*?._-]+)*$/;

/** Quotes one argument for the /bin/sh that ssh runs ProxyCommand with, and escapes ssh's %. */
export function proxyCommandArg(value: string): string {
  const quoted = /^[A-Za-z0-9_/.:=@+,-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
  return quoted.replace(/%/g, '%%');
}

export function registerSshConfig(program: Command, runtime: Runtime): void {
  const command = program
    .command('ssh-config')
    .description('print a ~/.ssh/config block that sends ssh to these hosts through burrow')
    .argument('<host-or-proxy>', 'an ssh Host pattern (git.corp.example.com, "*.corp.example.com"), or the proxy URL (then --host)')
    .option('--host <pattern>', 'the ssh Host pattern, when the argument is a proxy URL')
    .option('--user <name>', 'add "User <name>" (git servers usually want git)')
    .option('--pomerium-url <url>', 'pass --pomerium-url: the proxy, when it is not each host on port 443')
    .option('--service-account-file <path>', 'pass --service-account-file (never a token itself: the config is a plain file)')
    .option('--server-alive-interval <seconds>', 'ssh keepalive interval (0 = leave ssh\'s default)', '30');
  addSessionLimitOptions(command);
  addSignInOptions(command);
  addTlsOptions(command);
  command.addHelpText(
    'after',
    `
Examples:
  $ burrow ssh-config git.corp.example.com --user git >> ~/.ssh/config
  $ burrow ssh-config https://proxy.corp.example.com --host '*.corp.example.com' >> ~/.ssh/config
`,
  );
  command.action((argument: string, values: SshConfigValues) => {
    runtime.stdout.write(sshConfigBlock(argument, values, runtime));
  });
}

export function sshConfigBlock(argument: string, values: SshConfigValues, runtime: Runtime): string {
  let pattern = values.host;
  let pomeriumUrl = values.pomeriumUrl;
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(argument)) {
    if (pomeriumUrl !== undefined) throw new UsageError(text.conflictingFlags('a proxy URL argument', '--pomerium-url'), { hint: text.conflictingFlagsHint });
    pomeriumUrl = argument;
    if (pattern === undefined) throw new UsageError(text.sshConfigNeedsHost(argument), { hint: text.sshConfigNeedsHostHint });
  } else {
    if (pattern !== undefined) throw new UsageError(text.conflictingFlags('a host pattern argument', '--host'), { hint: text.conflictingFlagsHint });
    pattern = argument;
  }
  if (!HOST_PATTERN.test(pattern.trim())) throw new UsageError(text.badHostPattern(pattern), { hint: text.badHostPatternHint });
  if (values.user !== undefined && !/^[A-Za-z0-9._-]+$/.test(values.user)) {
    throw new UsageError(text.badSshUser(values.user), { hint: text.badSshUserHint });
  }
  const interval = Number(values.serverAliveInterval);
  if (!/^[0-9]+$/.test(values.serverAliveInterval) || interval > 86_400) {
    throw new UsageError(text.invalidNumber('--server-alive-interval', values.serverAliveInterval, 'whole seconds, 0 to 86400'), {
      hint: text.invalidNumberHint('--server-alive-interval'),
    });
  }
  // Validate now what the ProxyCommand would otherwise reject at every ssh.
  const args = ['tcp', '--listen', '-', '%h:%p'];
  if (pomeriumUrl !== undefined) {
    const proxy = parseProxyUrl(pomeriumUrl, '--pomerium-url');
    args.push('--pomerium-url', proxy.origin);
    if (proxy.scheme === 'https') buildTls(values, runtime.env);
  } else {
    buildTls(values, runtime.env);
  }
  signInSettings(values);
  const limits = sessionLimits(values);
  stallTimeout(values);
  const file = (flag: string, path: string | undefined) => path !== undefined && args.push(flag, resolve(path));
  if (values.disableTlsVerification) args.push('--disable-tls-verification');
  file('--alternate-ca-path', values.alternateCaPath);
  if (values.caCert !== undefined) args.push('--ca-cert', values.caCert);
  file('--client-cert', values.clientCert);
  file('--client-key', values.clientKey);
  file('--service-account-file', values.serviceAccountFile);
  if (values.browserCmd !== undefined) args.push('--browser-cmd', values.browserCmd);
  if (values.browser === false) args.push('--no-browser');
  if (values.loginTimeout !== '300') args.push('--login-timeout', values.loginTimeout);
  if (values.credentialStore !== undefined) args.push('--credential-store', values.credentialStore);
  if (values.stallTimeout !== undefined && values.stallTimeout !== DEFAULT_STALL_TIMEOUT) args.push('--stall-timeout', values.stallTimeout.trim());
  if (limits?.maxDurationLabel !== undefined) args.push('--max-duration', limits.maxDurationLabel);
  if (limits?.closeOnTokenExpiry) args.push('--close-on-token-expiry');

  // %h:%p are ssh's tokens and stay unquoted; everything else is quoted for sh and ssh.
  const command = [...runtime.selfCommand(), ...args].map((a) => (a === '%h:%p' ? a : proxyCommandArg(a))).join(' ');
  const lines = [
    `# burrow ${runtime.version}: ssh to ${pattern.trim()} through the identity-aware proxy.`,
    `# Append to ~/.ssh/config, e.g.: burrow ssh-config ${argument} >> ~/.ssh/config`,
    `Host ${pattern.trim()}`,
    `  ProxyCommand ${command}`,
  ];
  if (interval > 0) lines.push(`  ServerAliveInterval ${interval}`, '  ServerAliveCountMax 4');
  if (values.user !== undefined) lines.push(`  User ${values.user}`);
  return `${lines.join('\n')}\n`;
}
