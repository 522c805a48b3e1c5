/**
 * The pure part of `burrow doctor`: the steps and their order, what each depends on, how a step
 * after a failed one is skipped, the exit code of a run, and the clock-skew judgement. The steps
 * themselves (on the wire) are doctor.ts; printing them is cli/commands/doctor.ts.
 */
import { EXPIRY_SKEW_SECONDS } from '../auth/jwt.js';
import { type BurrowError, ExitCode, toBurrowError } from '../errors.js';
import { text } from '../output/messages.js';

/** Every step, in the order a tunnel meets them (the `step` field of `--json`). */
export const STEP_NAMES = ['dns', 'forward-proxy', 'tcp', 'tls', 'credential-store', 'sign-in', 'tunnel', 'clock'] as const;
export type StepName = (typeof STEP_NAMES)[number];

export interface StepResult {
  step: StepName;
  /** True when the step passed; false when it failed or was skipped. */
  ok: boolean;
  /** Not run, or not run to the end, because a step it needs failed. */
  skipped?: true;
  /** What was found (on success), why it was skipped, or the error's message. */
  detail: string;
  /** The failure: the error burrow would raise for it (its code, hint and exit code). */
  error?: BurrowError;
  /** For a skipped step: the failed step it waited for. */
  after?: StepName;
}

/** What a step's run gives: what it found, or that it could not finish for want of an earlier step. */
export type StepOutcome = { detail: string } | { skipped: string; after: StepName };

export interface StepSpec {
  step: StepName;
  /** Steps that must have passed for this one to run. */
  needs: readonly StepName[];
  /** Runs the step; throws the BurrowError its failure is. `passed` tells whether an earlier step passed. */
  run(passed: (step: StepName) => boolean): Promise<StepOutcome>;
}

/**
 * Runs `specs` in order, each only if the steps it needs passed (otherwise it is skipped, naming
 * the step that failed first on the way). `onStep` hears each result as it is known.
 */
export async function runSteps(specs: readonly StepSpec[], onStep: (result: StepResult) => void = () => {}): Promise<StepResult[]> {
  const results = new Map<StepName, StepResult>();
  const passed = (step: StepName) => results.get(step)?.ok === true;
  for (const spec of specs) {
    const blocker = spec.needs.map((need) => results.get(need)).find((result) => result !== undefined && !result.ok);
    let result: StepResult;
    if (blocker) {
      result = skippedAfter(spec.step, blocker.after ?? blocker.step);
    } else {
      try {
        const outcome = await spec.run(passed);
        result =
          'skipped' in outcome
            ? { step: spec.step, ok: false, skipped: true, detail: outcome.skipped, after: outcome.after }
            : { step: spec.step, ok: true, detail: outcome.detail };
      } catch (error) {
        const failure = toBurrowError(error);
        result = { step: spec.step, ok: false, detail: failure.message, error: failure };
      }
    }
    results.set(spec.step, result);
    onStep(result);
  }
  return [...results.values()];
}

function skippedAfter(step: StepName, after: StepName): StepResult {
  return { step, ok: false, skipped: true, detail: text.doctorSkipped(text.doctorStep(after)), after };
}

/** 0 when every step passed; else the exit code of the first failure (the codes `burrow tcp` uses). */
export function doctorExitCode(results: readonly StepResult[]): number {
  if (results.every((result) => result.ok)) return ExitCode.ok;
  return results.find((result) => result.error)?.error?.exitCode ?? ExitCode.internal;
}

export interface ClockReading {
  /** The proxy's `Date` header, if it sent one. */
  date: string | undefined;
  /** When the request left and the answer came, by this machine's clock (ms since the epoch). */
  sentAtMs: number;
  receivedAtMs: number;
}

export type ClockVerdict =
  | { kind: 'no-date' }
  /** `skewSeconds`: the proxy's clock less ours (positive: ours is behind); `beyond`: more than the margin allows, whatever the uncertainty. */
  | { kind: 'measured'; skewSeconds: number; beyond: boolean };

/**
 * How far this machine's clock is from the proxy's. A `Date` header has whole seconds, and the
 * proxy wrote it some time between our request leaving and its answer coming: the skew is known
 * to within half a second plus half the round trip, and counts as beyond the margin burrow allows
 * for token expiry (EXPIRY_SKEW_SECONDS) only when it is beyond it by more than that.
 */
export function judgeClock(reading: ClockReading, marginSeconds = EXPIRY_SKEW_SECONDS): ClockVerdict {
  const proxyMs = reading.date === undefined ? Number.NaN : Date.parse(reading.date);
  if (!Number.isFinite(proxyMs)) return { kind: 'no-date' };
  const ourMs = (reading.sentAtMs + reading.receivedAtMs) / 2;
  const skew = (proxyMs + 500 - ourMs) / 1000;
  const uncertainty = 0.5 + Math.max(0, reading.receivedAtMs - reading.sentAtMs) / 2000;
  return { kind: 'measured', skewSeconds: skew, beyond: Math.abs(skew) - uncertainty > marginSeconds };
}
