/**
 * `burrow up --print-service systemd|launchd`: a user unit (systemd) or launch agent (launchd)
 * that runs `burrow up` at login, restarts it when it fails, and reloads it with SIGHUP. The
 * command is this burrow, by absolute paths (Runtime.selfCommand), so the service runs the same
 * program wherever PATH points; `config` is the file BURROW_CONFIG names now (absolute), written in too.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';

export const SERVICE_KINDS = ['systemd', 'launchd'] as const;
export type ServiceKind = (typeof SERVICE_KINDS)[number];

/** One word of a systemd command line: quoted when it must be, `%` and `$` doubled (systemd.service(5)). */
function systemdWord(word: string): string {
  const escaped = word.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return /^[A-Za-z0-9_@%+=:,./$-]+$/.test(escaped) ? escaped : `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** A value of a systemd `Environment=` assignment, quoted as one word. */
function systemdEnvironment(name: string, value: string): string {
  return `"${`${name}=${value}`.replace(/%/g, '%%').replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function xml(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** The service file that runs `self up names…` (text for stdout). */
export function serviceDefinition(kind: ServiceKind, self: readonly string[], names: readonly string[], options: { config?: string | undefined; home?: string | undefined } = {}): string {
  const command = [...self, 'up', ...names];
  const config = options.config;
  if (kind === 'systemd') {
    return [
      '# burrow up as a systemd user service: it starts at login and restarts when it fails.',
      '# Save as ~/.config/systemd/user/burrow.service; reload after editing the config file with',
      '# systemctl --user reload burrow.service. Logs: journalctl --user -u burrow.service',
      '[Unit]',
      'Description=burrow: tunnels through the identity-aware proxy',
      'After=network-online.target',
      '',
      '[Service]',
      'Type=exec',
      `ExecStart=${command.map(systemdWord).join(' ')}`,
      'ExecReload=/bin/kill -HUP $MAINPID',
      ...(config ? [`Environment=${systemdEnvironment('BURROW_CONFIG', config)}`] : []),
      'Restart=on-failure',
      'RestartSec=5',
      '',
      '[Install]',
      'WantedBy=default.target',
      '',
    ].join('\n');
  }
  const home = options.home || homedir();
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    '<dict>',
    '  <key>Label</key>',
    '  <string>burrow.up</string>',
    '  <key>ProgramArguments</key>',
    '  <array>',
    ...command.map((word) => `    <string>${xml(word)}</string>`),
    '  </array>',
    ...(config ? ['  <key>EnvironmentVariables</key>', '  <dict>', '    <key>BURROW_CONFIG</key>', `    <string>${xml(config)}</string>`, '  </dict>'] : []),
    '  <key>RunAtLoad</key>',
    '  <true/>',
    '  <key>KeepAlive</key>',
    '  <dict>',
    '    <key>SuccessfulExit</key>',
    '    <false/>',
    '  </dict>',
    '  <key>StandardErrorPath</key>',
    `  <string>${xml(join(home, 'Library', 'Logs', 'burrow.log'))}</string>`,
    '</dict>',
    '</plist>',
    '',
  ].join('\n');
}
