/**
 * Whether burrow's stderr gets colours. chalk's own detection looks at FORCE_COLOR, the
 * terminal and TERM, but not at NO_COLOR (no-color.org), so the decision is made here:
 *
 * 1. `FORCE_COLOR` set: it decides (`0`/`false` = none, empty/`true`/`1` = basic, `2`, `3`), as in
 *    Node itself, where FORCE_COLOR takes precedence over NO_COLOR;
 * 2. `NO_COLOR` set and not empty: no colour;
 * 3. stderr not a terminal (a pipe, a file, ssh's log): no colour;
 * 4. otherwise chalk's detection for stderr (TERM=dumb and the like get none).
 */
import { Chalk, type ChalkInstance, supportsColorStderr } from 'chalk';

export type ColorLevel = 0 | 1 | 2 | 3;

export function colorLevel(env: NodeJS.ProcessEnv, isTTY: boolean): ColorLevel {
  const force = env.FORCE_COLOR;
  if (force !== undefined) {
    if (force === '' || force === 'true') return 1;
    if (force === 'false') return 0;
    const n = Number.parseInt(force, 10);
    return Number.isNaN(n) ? 1 : (Math.max(0, Math.min(n, 3)) as ColorLevel);
  }
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return 0;
  if (!isTTY) return 0;
  if (env.TERM === 'dumb') return 0;
  return supportsColorStderr ? supportsColorStderr.level : 0;
}

/** A chalk for stderr at the level above, or undefined when there is no colour. */
export function stderrChalk(env: NodeJS.ProcessEnv, isTTY: boolean): ChalkInstance | undefined {
  const level = colorLevel(env, isTTY);
  return level === 0 ? undefined : new Chalk({ level });
}
