/**
 * `burrow config path | show [--json] | check`: the config file in use (cli/config.ts). `path`
 * prints its path, `show` every configurable flag's default and where it comes from (the flag's
 * own default, the file, or the environment) as a table or JSON on stdout, `check` reads the
 * file and says in one line on stderr that it is good (exit 0) or what is wrong (exit 2).
 */
import type { Command } from 'commander';
import { text } from '../../output/messages.js';
import { configLocation, type EffectiveSetting, effectiveDefaults, loadConfig, type TunnelConfig } from '../config.js';
import { addFlags } from '../flags.js';
import { commandLogger } from '../proxy-access.js';
import type { Runtime } from '../runtime.js';

/** A setting's value as `show` prints it: a list's items separated by commas. */
function shown(value: string | boolean | readonly string[]): string {
  return Array.isArray(value) ? value.join(', ') : String(value);
}

/** Where a setting's value comes from, as `show` says it. */
function from(setting: EffectiveSetting, path: string): string {
  if (setting.source === 'env') return setting.env!;
  if (setting.source === 'file') return `${path}:${setting.line}`;
  return setting.value === undefined ? 'not set' : 'default';
}

/** Left-aligned columns, two spaces apart, the last one unpadded. */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

function tunnelJson(tunnel: TunnelConfig) {
  return {
    name: tunnel.name,
    line: tunnel.line,
    family: tunnel.family,
    destination: tunnel.destination,
    listen: tunnel.listen ?? null,
    settings: Object.fromEntries(tunnel.settings.map((s) => [s.key, s.value])),
  };
}

export function registerConfig(program: Command, runtime: Runtime): void {
  const config = program.command('config').description('the config file: its path, the defaults in effect, a check');
  config
    .command('path')
    .description('print the path of the config file in use ($BURROW_CONFIG, else the default; it need not exist)')
    .action(() => {
      runtime.stdout.write(`${configLocation(runtime.env).path}\n`);
    });
  const show = config.command('show').description('print the defaults in effect and where each comes from (flag default, file, environment)');
  addFlags(show, 'config show');
  show.action(async (values: { json?: boolean }) => {
    const { path } = configLocation(runtime.env);
    const file = await loadConfig(runtime.env);
    const settings = effectiveDefaults(file, runtime.env);
    if (values.json) {
      const json = {
        path,
        exists: file !== undefined,
        defaults: settings.map((s) => ({ setting: s.key, value: s.value ?? null, from: s.source, ...(s.env ? { env: s.env } : {}), ...(s.line ? { line: s.line } : {}) })),
        tunnels: (file?.tunnels ?? []).map(tunnelJson),
      };
      runtime.stdout.write(`${JSON.stringify(json)}\n`);
      return;
    }
    const rows = [['SETTING', 'VALUE', 'FROM'], ...settings.map((s) => [s.key, s.value === undefined ? '-' : shown(s.value), from(s, path)])];
    let out = table(rows);
    const tunnels = file?.tunnels ?? [];
    if (tunnels.length > 0) {
      const extra = (t: TunnelConfig) => t.settings.map((s) => (s.value === true ? s.key : `${s.key}=${shown(s.value)}`)).join(' ');
      out += `\n${table([['TUNNEL', 'DESTINATION', 'LISTEN', 'SETTINGS'], ...tunnels.map((t) => [t.name, t.destination, t.listen ?? '-', extra(t)])])}`;
    }
    runtime.stdout.write(out);
  });
  config
    .command('check')
    .description('check the config file: one line, exit 0 when it is good, 2 when it is not')
    .action(async () => {
      const { path } = configLocation(runtime.env);
      const file = await loadConfig(runtime.env);
      // Environment values are checked too: they are part of what every command would use.
      effectiveDefaults(file, runtime.env);
      const logger = commandLogger({}, runtime, 'info');
      logger.notice(file === undefined ? text.configNone(path) : text.configChecked(path, file.defaults.length, file.tunnels.length));
    });
}
