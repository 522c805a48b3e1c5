/**
 * `burrow doctor <destination>`: walks the path a tunnel to <destination> takes — name lookup,
 * forward proxy, TCP, TLS, the credential store, the cached sign-in, the tunnel request itself,
 * the clock — and prints one line per step on stderr (✓ passed, ✗ failed with the fix, - skipped),
 * or with `--json` one document on stdout for a support ticket. A udp+https:// destination's
 * tunnel step is burrow udp's CONNECT-UDP request. Exit 0 when every step passed,
 * else the exit code of the first failure (the codes `burrow tcp` uses). Never opens a browser,
 * never signs in, never prints a token. The steps themselves are diagnose/doctor.ts.
 */
import type { Command } from 'commander';
import { ExitCode, UsageError } from '../../errors.js';
import { diagnose } from '../../diagnose/doctor.js';
import { doctorExitCode, type StepResult } from '../../diagnose/steps.js';
import { text } from '../../output/messages.js';
import { redact } from '../../output/redact.js';
import { selectStore } from '../../store/select.js';
import { createTransport, type TransportChoice } from '../../tunnel/transports.js';
import { ConnectUdpTransport } from '../../tunnel/connect-udp.js';
import { type DestinationFamily, parseTarget } from '../destination.js';
import { addFlags } from '../flags.js';
import { serviceAccountToken, type ServiceAccountValues } from '../options.js';
import { announceRoute, commandLogger, proxyAccess, type ProxyAccessValues } from '../proxy-access.js';
import type { Runtime } from '../runtime.js';

interface DoctorValues extends ProxyAccessValues, ServiceAccountValues {
  pomeriumUrl?: string;
  transport: TransportChoice;
  header: string[];
  json?: boolean;
}

/** One step as `--json` shows it: the field names are part of the documented contract (docs/json-events.md). */
export interface StepJson {
  step: string;
  ok: boolean;
  skipped?: true;
  detail: string;
  code?: string;
  hint?: string;
}

export function stepJson(result: StepResult): StepJson {
  return {
    step: result.step,
    ok: result.ok,
    ...(result.skipped ? { skipped: true as const } : {}),
    detail: result.detail,
    ...(result.error ? { code: result.error.code } : {}),
    ...(result.error?.hint ? { hint: result.error.hint } : {}),
  };
}

/** The mark before a step's line. */
export function stepMark(result: StepResult): string {
  return result.ok ? '✓' : result.skipped ? '-' : '✗';
}

/** A step as its line on stderr: mark, name, what was found (or the error, then after `—` its fix). */
export function stepLine(result: StepResult): string {
  const hint = result.error?.hint;
  return text.doctorLine(stepMark(result), text.doctorStep(result.step), hint ? `${result.detail} — ${hint}` : result.detail);
}

const EXAMPLES = `
Examples:
  $ burrow doctor git.corp.example.com:22
  $ burrow doctor db.internal:5432 --pomerium-url https://proxy.corp.example.com:8443
  $ burrow doctor wss://gateway.corp.example.com/ssh
  $ burrow doctor udp+https://dns.corp.example.com:53     # a burrow udp route: the CONNECT-UDP request
  $ burrow doctor git.corp.example.com:22 --json > doctor.json   # for a support ticket
`;

export function registerDoctor(program: Command, runtime: Runtime): void {
  const command = program
    .command('doctor')
    .summary('check each step a tunnel takes, and say what to fix')
    .description(
      'Walk the path a tunnel to <destination> takes (name lookup, forward proxy, TCP, TLS, credential store, cached sign-in, the tunnel request, the clock) and print one line per step; exit 0 only when all pass. Never signs in.',
    )
    .argument('<destination>', 'host:port | tcp+https://host:port | tcp+https://proxy[:port]/host:port | wss://host[:port]/path | udp+https://host:port');
  addFlags(command, 'doctor');
  command.addHelpText('after', EXAMPLES);
  command.action(async (destination: string, values: DoctorValues) => {
    runtime.setExitCode(await runDoctor(destination, values, runtime));
  });
}

export async function runDoctor(destination: string, values: DoctorValues, runtime: Runtime): Promise<number> {
  // A udp+https:// destination is checked as burrow udp opens it (CONNECT-UDP), the rest as burrow tcp.
  const family: DestinationFamily = /^\s*udp\+https?:\/\//i.test(destination) ? 'udp' : 'tcp';
  const target = parseTarget(destination, values.pomeriumUrl, family);
  if (family === 'udp' && values.transport !== undefined && values.transport !== 'auto') {
    throw new UsageError(text.conflictingFlags('a udp+https:// destination', '--transport'), { hint: text.doctorUdpTransportHint });
  }
  const logger = commandLogger({ json: values.json }, runtime, 'info');
  const serviceAccount = serviceAccountToken(values, runtime.env);
  const access = proxyAccess(target.proxy, values, runtime, logger, serviceAccount);
  const transport =
    family === 'udp' ? new ConnectUdpTransport(access.route) : createTransport(values.transport, target, destination, { ...access.route, pingIntervalMs: 0 });
  announceRoute(access, values);
  const stop = new AbortController();
  const offSignals = runtime.onSignal(() => stop.abort());
  if (!values.json) logger.notice(text.doctorChecking(target.destination.authority, target.proxy.origin));
  let results: StepResult[];
  try {
    results = await diagnose(
      {
        target,
        route: access.route,
        transport,
        serviceAccount,
        signal: stop.signal,
        async openStore() {
          let fallback: string | undefined;
          const store = await selectStore({
            choice: values.credentialStore,
            env: runtime.env,
            warn: (line) => logger.warn(line),
            peek: target.proxy.origin,
            onFallback: (reason) => (fallback = reason),
          });
          return { store, fallback };
        },
      },
      (result) => {
        if (!values.json) logger.notice(stepLine(result));
      },
    );
  } finally {
    offSignals();
  }
  if (stop.signal.aborted) return ExitCode.interrupted;
  const code = doctorExitCode(results);
  if (values.json) {
    const { proxy, destination } = target;
    const document = { ok: code === ExitCode.ok, proxy: proxy.origin, dest: destination.authority, exit_code: code, steps: results.map(stepJson) };
    // Nothing in a step holds a token; redact is the second lock on that door.
    runtime.stdout.write(`${redact(JSON.stringify(document))}\n`);
  } else if (code === ExitCode.ok) {
    logger.notice(text.doctorPassed(results.length));
  } else {
    logger.notice(text.doctorFailed(results.filter((r) => !r.ok && !r.skipped).map((r) => text.doctorStep(r.step)).join(', ')));
  }
  return code;
}
