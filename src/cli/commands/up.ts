/**
 * `burrow up [name…]`: every tunnel under the config file's `tunnels:` (or the named ones) in one
 * process. Each runs as `burrow tcp` or `burrow udp` would with its settings (cli/config.ts,
 * {@link tunnelValues}), says its name in every line and JSON event, and prints `<name> <address>`
 * on stdout once bound. Tunnels to one proxy share one token source: one sign-in serves them all.
 * Every listener takes its tunnels' descriptors from one budget under the open-files limit.
 *
 * SIGHUP re-reads the file: tunnels no longer in it stop (their open connections closed, with a
 * line), new ones start, changed ones (any setting, the file's defaults included) restart, and
 * unchanged ones, with their open connections, are left alone. A file that does not read keeps
 * the running set, and says why. A tunnel that cannot start (its port taken) is reported and the
 * others run; a reload tries it again. SIGINT/SIGTERM stop everything.
 */
import type { Command } from 'commander';
import { type BurrowError, ExitCode, toBurrowError, UsageError } from '../../errors.js';
import { DescriptorBudget } from '../../listen/bind.js';
import { listenTcp } from '../../listen/tcp.js';
import { listenUdp } from '../../listen/udp.js';
import type { Logger } from '../../output/log.js';
import { text } from '../../output/messages.js';
import { type BurrowConfig, configLocation, loadConfig, type TunnelConfig, tunnelValues } from '../config.js';
import { addFlags } from '../flags.js';
import { commandLogger, type LogValues } from '../proxy-access.js';
import type { Runtime } from '../runtime.js';
import { CredentialsPool, type SignInValues } from '../sign-in.js';
import { serviceDefinition, type ServiceKind } from '../service.js';
import { serveTcp, tcpSettings, type TcpOptionValues } from './tcp.js';
import { serveUdp, udpSettings, type UdpOptionValues } from './udp.js';

interface UpOptionValues extends LogValues, SignInValues {
  printService?: ServiceKind;
}

/**
 * `up`'s own flags that every tunnel takes too (commander's attribute names): given on `up`'s
 * command line, they win over the file for every tunnel.
 */
const FOR_EVERY_TUNNEL = ['verbose', 'logLevel', 'json', 'browserCmd', 'browser', 'loginTimeout', 'credentialStore'] as const;

const EXAMPLES = `
Examples:
  # ~/.config/burrow/config.yaml ("burrow config path" prints where yours is):
  #   defaults:
  #     pomerium-url: https://pomerium.corp.example.com
  #   tunnels:
  #     gitlab: { destination: git.corp.example.com:22, listen: 127.0.0.1:2202 }
  #     dns:    { destination: udp+https://dns.corp.example.com:53, listen: 127.0.0.1:5353 }
  $ burrow up

  # only some of them
  $ burrow up gitlab

  # after editing the file: stop, start and restart what changed, leave the rest alone
  $ kill -HUP <pid of burrow up>

  # run it at login
  $ burrow up --print-service systemd > ~/.config/systemd/user/burrow.service
  $ burrow up --print-service launchd > ~/Library/LaunchAgents/burrow.up.plist
`;

export function registerUp(program: Command, runtime: Runtime): void {
  const command = program
    .command('up')
    .summary('run the tunnels of the config file in one process, one sign-in per proxy; SIGHUP reloads it')
    .description(
      'Start every tunnel under tunnels: in the config file (or the ones named), each as "burrow tcp" or "burrow udp" would, with one sign-in per proxy for all of them. SIGHUP re-reads the file: new tunnels start, removed ones stop, changed ones restart, the others and their connections are left alone.',
    )
    .argument('[name...]', 'the tunnels to run (default: every one in the config file)');
  addFlags(command, 'up');
  command.addHelpText('after', EXAMPLES);
  command.action(async (names: string[], values: UpOptionValues, self: Command) => {
    const overrides: Record<string, unknown> = {};
    for (const attribute of FOR_EVERY_TUNNEL) if (self.getOptionValueSource(attribute) === 'cli') overrides[attribute] = values[attribute];
    runtime.setExitCode(await runUp(names, values, overrides, runtime));
  });
}

/** What a reload does with each tunnel, by name. */
export interface TunnelPlan {
  start: string[];
  stop: string[];
  restart: string[];
  unchanged: string[];
}

/**
 * Compares the running tunnels with those the file now asks for, each as name → fingerprint
 * (everything it runs with): gone ones stop, new ones start, others restart if their
 * fingerprint changed. Each list keeps the order of the map it comes from.
 */
export function planTunnels(running: ReadonlyMap<string, string>, wanted: ReadonlyMap<string, string>): TunnelPlan {
  const plan: TunnelPlan = { start: [], stop: [], restart: [], unchanged: [] };
  for (const name of running.keys()) if (!wanted.has(name)) plan.stop.push(name);
  for (const [name, fingerprint] of wanted) {
    const now = running.get(name);
    if (now === undefined) plan.start.push(name);
    else if (now === fingerprint) plan.unchanged.push(name);
    else plan.restart.push(name);
  }
  return plan;
}

/** Everything a tunnel runs with, as one string: equal strings, same tunnel. */
function fingerprint(tunnel: TunnelConfig, values: Record<string, unknown>): string {
  return JSON.stringify([tunnel.family, tunnel.destination, values]);
}

/** A tunnel serving: what it runs with, and how to stop it (after saying why). */
interface RunningTunnel {
  fingerprint: string;
  stop(why?: string): Promise<void>;
}

/** The tunnels of `config` to run: the named ones (every one named must exist, at start-up), or all. */
function chosen(config: BurrowConfig | undefined, names: readonly string[], strict: boolean, path: string): TunnelConfig[] {
  const tunnels = config?.tunnels ?? [];
  if (strict && tunnels.length === 0) {
    throw new UsageError(config === undefined ? text.upNoConfig(path) : text.upNoTunnels(path), { code: 'BURROW_CONFIG', hint: text.upNoTunnelsHint });
  }
  if (names.length === 0) return [...tunnels];
  if (strict) {
    const unknown = names.find((name) => !tunnels.some((t) => t.name === name));
    if (unknown !== undefined) {
      throw new UsageError(text.upUnknownTunnel(unknown, path, tunnels.map((t) => t.name).join(', ')), { code: 'BURROW_CONFIG', hint: text.upUnknownTunnelHint });
    }
  }
  return tunnels.filter((t) => names.includes(t.name));
}

export async function runUp(names: string[], values: UpOptionValues, overrides: Record<string, unknown>, runtime: Runtime): Promise<number> {
  if (values.printService !== undefined) {
    const { path, named } = configLocation(runtime.env);
    runtime.stdout.write(serviceDefinition(values.printService, runtime.selfCommand(), names, { config: named ? path : undefined, home: runtime.env.HOME }));
    commandLogger(values, runtime, 'info').notice(text.upServiceWritten(values.printService));
    return ExitCode.ok;
  }
  const logger = commandLogger(values, runtime, 'info');
  const { path } = configLocation(runtime.env);
  const first = await loadConfig(runtime.env);
  const initial = chosen(first, names, true, path);

  const pool = new CredentialsPool(logger);
  const budget = DescriptorBudget.measure();
  const running = new Map<string, RunningTunnel>();
  const stopping = new AbortController();

  /** Binds and serves one tunnel; its failure is reported on its own lines and returned. */
  const start = async (tunnel: TunnelConfig, config: BurrowConfig): Promise<BurrowError | undefined> => {
    const options = tunnelValues(tunnel, config, runtime.env, overrides);
    const context = { tunnel: tunnel.name, pool };
    const stop = new AbortController();
    let serving: Promise<void>;
    let address: string;
    let tunnelLogger: Logger;
    try {
      if (tunnel.family === 'tcp') {
        const s = tcpSettings(tunnel.destination, options as unknown as TcpOptionValues, runtime, context);
        if (s.listen.kind !== 'tcp') throw new Error('a tunnel of the config file listens on stdin/stdout');
        const listener = await listenTcp(s.listen.host, s.listen.port, budget);
        tunnelLogger = s.access.logger;
        address = listener.address;
        serving = serveTcp(s, listener, stop.signal);
      } else {
        const s = udpSettings(tunnel.destination, options as unknown as UdpOptionValues, runtime, context);
        const listener = await listenUdp(s.listen.host, s.listen.port, budget);
        tunnelLogger = s.access.logger;
        address = listener.address;
        serving = serveUdp(s, listener, stop.signal);
      }
    } catch (error) {
      const failure = toBurrowError(error);
      commandLogger(options as LogValues, runtime, 'info', tunnel.name).failure(failure);
      return failure;
    }
    const entry: RunningTunnel = {
      fingerprint: fingerprint(tunnel, options),
      async stop(why) {
        if (why !== undefined) tunnelLogger.info(why);
        stop.abort();
        await done;
      },
    };
    const done = serving.catch((error: unknown) => tunnelLogger.failure(toBurrowError(error))).finally(() => {
      if (running.get(tunnel.name) === entry) running.delete(tunnel.name);
    });
    running.set(tunnel.name, entry);
    runtime.stdout.write(`${tunnel.name} ${address}\n`);
    return undefined;
  };

  /** Brings the running set to `tunnels` of `config`; returns what it did. */
  const apply = async (tunnels: TunnelConfig[], config: BurrowConfig) => {
    const wanted = new Map(tunnels.map((t) => [t.name, fingerprint(t, tunnelValues(t, config, runtime.env, overrides))]));
    const plan = planTunnels(new Map([...running].map(([name, t]) => [name, t.fingerprint])), wanted);
    await Promise.all([
      ...plan.stop.map((name) => running.get(name)?.stop(text.upStopping)),
      ...plan.restart.map((name) => running.get(name)?.stop(text.upRestarting)),
    ]);
    const failed = new Map<string, BurrowError>();
    for (const name of [...plan.restart, ...plan.start]) {
      if (stopping.signal.aborted) break;
      const failure = await start(tunnels.find((t) => t.name === name)!, config);
      if (failure) failed.set(name, failure);
    }
    return { plan, failed };
  };

  const reload = async () => {
    if (stopping.signal.aborted) return;
    logger.info(text.upReloading(path));
    let config: BurrowConfig | undefined;
    try {
      config = await loadConfig(runtime.env);
      if (config === undefined) throw new UsageError(text.configNone(path), { code: 'BURROW_CONFIG' });
    } catch (error) {
      const failure = toBurrowError(error);
      logger.warn(text.upReloadFailed(failure.hint ? `${failure.message} — ${failure.hint}` : failure.message, running.size));
      return;
    }
    const { plan, failed } = await apply(chosen(config, names, false, path), config);
    const ok = (list: string[]) => list.filter((name) => !failed.has(name)).length;
    logger.info(
      text.upReloaded(path, { started: ok(plan.start), stopped: plan.stop.length, restarted: ok(plan.restart), unchanged: plan.unchanged.length, failed: failed.size }),
    );
  };

  // Start-up and every reload run one after another: a SIGHUP while tunnels start waits its turn.
  const starting = apply(initial, first!);
  let reloads: Promise<void> = starting.then(() => {});
  const offSignals = runtime.onSignal((signal) => {
    if (signal === 'SIGHUP') reloads = reloads.then(reload);
    else stopping.abort();
  });
  try {
    const { failed } = await starting;
    if (running.size === 0 && !stopping.signal.aborted) {
      stopping.abort();
      logger.error(text.upNothingStarted);
      return failed.values().next().value?.exitCode ?? ExitCode.usage;
    }
    logger.info(text.upStarted(running.size, initial.length));
    await new Promise<void>((resolve) => {
      if (stopping.signal.aborted) resolve();
      else stopping.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    await reloads;
    await Promise.all([...running.values()].map((t) => t.stop()));
    return ExitCode.ok;
  } finally {
    offSignals();
  }
}
