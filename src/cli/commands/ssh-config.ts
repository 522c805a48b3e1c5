/**
 * `burrow ssh-config <host pattern | proxy URL | destination>` prints a ready `~/.ssh/config`
 * block whose ProxyCommand runs this very burrow (absolute paths, so ssh's PATH does not matter),
 * with every tunnel flag given here that differs from its default passed on (the flag table,
 * flags.ts, says which and how), plus keepalives so idle sessions survive NAT and load balancers.
 * Every value is checked now, so a bad one fails here rather than at every ssh. What the
 * ProxyCommand's burrow finds by itself when ssh runs it (the environment, the default config
 * file) is not written, so editing the file changes every host; a BURROW_CONFIG file's values are.
 *
 *   git.corp.example.com, "*.corp.example.com"       the Host pattern; each host's %h:%p is tunnelled to
 *   https://proxy.corp.example.com --host PATTERN    the same through that proxy (as --pomerium-url)
 *   wss://gw/ssh, tcp+https://proxy/db:5432, host:port --host PATTERN
 *                                                    every host of PATTERN goes to that one destination
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { parseForwardProxy, type ProxySettingValues } from '../../net/proxy-env.js';
import { buildTls, type TlsFlags } from '../../net/tls.js';
import { text } from '../../output/messages.js';
import { parseProxyUrl, parseTarget } from '../destination.js';
import { addFlags, checkValues, defaultValues, flagsOf, optionOf } from '../flags.js';
import { parseHostPattern, parseServerAliveInterval, type SessionLimitValues } from '../options.js';
import { resolveTransport, type TransportChoice } from '../../tunnel/transports.js';
import type { CommandName } from '../command-table.js';
import { inheritedValues } from '../config.js';
import type { Runtime } from '../runtime.js';
import type { SignInValues } from '../sign-in.js';

export interface SshConfigValues extends TlsFlags, Partial<SignInValues>, SessionLimitValues, ProxySettingValues {
  host?: string;
  user?: string;
  pomeriumUrl?: string;
  serviceAccountFile?: string;
  /** Those with a default are filled in from the flag table when missing. */
  serverAliveInterval?: string;
  connectTimeout?: string;
  transport?: TransportChoice;
  pingInterval?: string;
  header?: string[];
}

/**
 * This command's sentences that output/messages.ts does not have yet (src/output is being
 * restructured on another branch; they move there after the merge).
 */
const say = {
  needsHost: (destination: string) => `with a destination (${destination}), say which ssh hosts go to it`,
  lineBreak: (flag: string) => `${flag} cannot be written into an ssh config: its value has a line break`,
  lineBreakHint: 'give the value on one line',
};

/** Quotes one argument for the /bin/sh that ssh runs ProxyCommand with, and escapes ssh's %. */
export function proxyCommandArg(value: string): string {
  const quoted = /^[A-Za-z0-9_/.:=@+,-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
  return quoted.replace(/%/g, '%%');
}

export function registerSshConfig(program: Command, runtime: Runtime): void {
  const command = program
    .command('ssh-config')
    .description('print a ~/.ssh/config block that sends ssh to these hosts through burrow')
    .argument(
      '<host-or-proxy>',
      'an ssh Host pattern (git.corp.example.com, "*.corp.example.com"), or the proxy URL, or a destination as tcp takes it (wss://host/path, tcp+https://proxy/host:port; then --host)',
    );
  addFlags(command, 'ssh-config');
  command.addHelpText(
    'after',
    `
Examples:
  $ burrow ssh-config git.corp.example.com --user git >> ~/.ssh/config
  $ burrow ssh-config https://proxy.corp.example.com --host '*.corp.example.com' >> ~/.ssh/config
  $ burrow ssh-config wss://gateway.corp.example.com/ssh --host gitlab --header "PRIVATE-TOKEN: …" >> ~/.ssh/config
  $ burrow ssh-config tcp+https://proxy.corp.example.com/db.internal:22 --host db >> ~/.ssh/config
`,
  );
  command.action((argument: string, values: SshConfigValues, self: Command) => {
    runtime.stdout.write(sshConfigBlock(argument, values, runtime, inheritedValues(self, runtime.env)));
  });
}

/** What the argument is: a proxy URL (http[s]://), a destination (another scheme, or host:port), or a Host pattern. */
function argumentKind(argument: string): 'proxy-url' | 'destination' | 'pattern' {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(argument.trim())?.[1]?.toLowerCase();
  if (scheme === 'https' || scheme === 'http') return 'proxy-url';
  // Host patterns have neither a scheme nor a colon.
  return scheme !== undefined || argument.includes(':') || argument.trim().startsWith('[') ? 'destination' : 'pattern';
}

/**
 * `inherited`: the option values (attribute names) the ProxyCommand's burrow will find by itself
 * when ssh runs it, from the environment or the default config file (config.ts,
 * inheritedValues): they are not written, so editing the file changes every host's ProxyCommand.
 */
export function sshConfigBlock(argument: string, given: SshConfigValues, runtime: Runtime, inherited: ReadonlySet<string> = new Set()): string {
  const values = { ...defaultValues('ssh-config'), ...given } as SshConfigValues & Record<string, unknown>;
  const kind = argumentKind(argument);
  let pattern = values.host;
  // ssh's %h:%p (left unquoted), or the one destination every matching host goes to.
  let destination = '%h:%p';
  let proxyScheme: 'https' | 'http' = 'https';
  let websocket = false;
  if (kind === 'proxy-url') {
    if (values.pomeriumUrl !== undefined) throw new UsageError(text.conflictingFlags('a proxy URL argument', '--pomerium-url'), { hint: text.conflictingFlagsHint });
    values.pomeriumUrl = argument;
    if (pattern === undefined) throw new UsageError(text.sshConfigNeedsHost(argument), { hint: text.sshConfigNeedsHostHint });
  } else if (kind === 'destination') {
    if (pattern === undefined) throw new UsageError(say.needsHost(argument), { hint: text.sshConfigNeedsHostHint });
    // As tcp will parse it (--pomerium-url included: it may not go with wss://).
    const target = parseTarget(argument, values.pomeriumUrl);
    destination = argument.trim();
    proxyScheme = target.proxy.scheme;
    websocket = target.websocket !== undefined;
  } else {
    if (pattern !== undefined) throw new UsageError(text.conflictingFlags('a host pattern argument', '--host'), { hint: text.conflictingFlagsHint });
    pattern = argument;
  }
  pattern = parseHostPattern(pattern);
  // Validate now what the ProxyCommand would otherwise reject at every ssh: each value, then
  // what depends on several.
  checkValues('ssh-config', values);
  if (kind !== 'destination' && values.pomeriumUrl !== undefined) proxyScheme = parseProxyUrl(values.pomeriumUrl, '--pomerium-url').scheme;
  resolveTransport(values.transport ?? 'auto', { websocket: websocket ? { url: destination } : undefined }, argument);
  const forward = typeof values.proxy === 'string' ? parseForwardProxy(values.proxy, '--proxy') : undefined;
  if (proxyScheme === 'https' || forward?.scheme === 'https') buildTls(values, runtime.env);
  const interval = parseServerAliveInterval(values.serverAliveInterval ?? '30');

  // %h:%p are ssh's tokens and stay unquoted; everything else is quoted for sh and ssh.
  const args = ['tcp', '--listen', '-', destination, ...passedOn(values, 'ssh-config', inherited)];
  const command = [...runtime.selfCommand(), ...args].map((a) => (a === '%h:%p' ? a : proxyCommandArg(a))).join(' ');
  const lines = [
    `# burrow ${runtime.version}: ssh to ${pattern} through the identity-aware proxy.`,
    `# Append to ~/.ssh/config, e.g.: burrow ssh-config ${argument} >> ~/.ssh/config`,
    `Host ${pattern}`,
    `  ProxyCommand ${command}`,
  ];
  if (interval > 0) lines.push(`  ServerAliveInterval ${interval}`, '  ServerAliveCountMax 4');
  if (values.user !== undefined) lines.push(`  User ${values.user}`);
  return `${lines.join('\n')}\n`;
}

/**
 * The `burrow tcp` flags for `values`, generically from the flag table: each flag ssh-config
 * passes on whose value is not its default, as the table says (flags.ts, {@link PassOn}), but
 * those in `inherited` (what the written command finds by itself).
 * `burrow k8s kubeconfig` passes its flags on to the exec-credential it writes the same way.
 */
export function passedOn(values: Record<string, unknown>, command: CommandName = 'ssh-config', inherited: ReadonlySet<string> = new Set()): string[] {
  const args: string[] = [];
  for (const entry of flagsOf(command)) {
    if (entry.passOn === false) continue;
    const option = optionOf(entry, command);
    if (inherited.has(option.attributeName())) continue;
    const flag = option.long!;
    const value = values[option.attributeName()];
    if (option.negate) {
      if (value === false) args.push(flag);
    } else if (!option.required && !option.optional) {
      if (value === true) args.push(flag);
    } else {
      const given = Array.isArray(value) ? (value as string[]) : typeof value === 'string' ? [value] : [];
      for (const raw of given) {
        if (raw.trim() === entry.default) continue;
        const written = entry.passOn === 'value' ? raw : entry.passOn === 'path' ? resolve(raw) : entry.passOn(raw);
        if (/[\r\n]/.test(written)) throw new UsageError(say.lineBreak(flag), { hint: say.lineBreakHint });
        args.push(flag, written);
      }
    }
  }
  return args;
}
