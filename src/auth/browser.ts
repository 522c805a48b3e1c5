/**
 * Getting a URL in front of the user: `--browser-cmd <program>` (run directly, the URL as its
 * only argument, never through a shell, like pomerium-cli's exec.Command), else `$BROWSER` (a
 * command line as xdg-open and gh take it: `%s` stands for the URL, else the URL is appended;
 * `none` means no browser), else the default browser through `open`, else nothing. On Linux a
 * session with no DISPLAY/WAYLAND_DISPLAY (a server, an SSH login) has no browser to open.
 *
 * The caller prints the URL whatever happens: a browser that was started may still never show
 * (ssh -X, WSL, a broken xdg-open), so the launch also reports the command's failing exit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { importExternal } from '../external.js';
import { text } from '../output/messages.js';

export type BrowserChoice =
  | { kind: 'command'; command: string; args: readonly string[]; source: 'browser-cmd' | 'BROWSER' }
  | { kind: 'default' }
  | { kind: 'none'; reason: 'no-browser' | 'browser-none' | 'no-display' };

export interface BrowserOptions {
  browserCmd?: string | undefined;
  noBrowser?: boolean | undefined;
}

/** Marks where the URL goes in the argument list of a command; replaced by {@link commandArgs}. */
const URL_SLOT = '\0url';

/**
 * Splits a `$BROWSER` value into words: blanks separate them, single and double quotes group
 * (a backslash escapes the next character outside single quotes); no other shell syntax.
 * `%s` in a word is the URL (`%%` a percent sign); without one the URL is a last argument.
 */
export function parseBrowserCommand(value: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < value.length) word += value[++i];
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < value.length) {
      word += value[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  let slotted = false;
  const args = words.map((w) => {
    if (!w.includes('%s')) return w.replace(/%%/g, '%');
    slotted = true;
    // Kept as a marker so the URL itself is never scanned for %s or %%.
    return w.split('%s').map((part) => part.replace(/%%/g, '%')).join(URL_SLOT);
  });
  return slotted ? args : [...args, URL_SLOT];
}

/** The argument list of `choice` for `url` (the URL in its slot). */
export function commandArgs(args: readonly string[], url: string): string[] {
  return args.map((a) => a.split(URL_SLOT).join(url));
}

/** Decides how to show the sign-in URL, before trying. */
export function chooseBrowser(options: BrowserOptions, env: NodeJS.ProcessEnv, platform: NodeJS.Platform = process.platform): BrowserChoice {
  if (options.noBrowser) return { kind: 'none', reason: 'no-browser' };
  if (options.browserCmd) return { kind: 'command', command: options.browserCmd, args: [URL_SLOT], source: 'browser-cmd' };
  const browser = env.BROWSER?.trim();
  if (browser === 'none') return { kind: 'none', reason: 'browser-none' };
  if (browser) {
    const [command, ...args] = parseBrowserCommand(browser);
    if (command && command !== URL_SLOT) return { kind: 'command', command, args, source: 'BROWSER' };
  }
  if (platform === 'linux' || platform === 'freebsd' || platform === 'openbsd') {
    if (!env.DISPLAY && !env.WAYLAND_DISPLAY) return { kind: 'none', reason: 'no-display' };
  }
  return { kind: 'default' };
}

/** What became of an attempt to open the URL. */
export type BrowserLaunch =
  /**
   * A process was started. `failure` settles with a short reason ("exited with status 3") if it
   * fails; it never settles while the process runs or once it exited 0.
   */
  | { started: true; failure: Promise<string> }
  /** Nothing was started: no browser chosen (`reason` undefined), or it could not be run. */
  | { started: false; reason?: string | undefined };

/** The reason a finished browser process failed, or undefined when it exited 0. */
function exitFailure(code: number | null, signal: NodeJS.Signals | null): string | undefined {
  if (signal) return text.browserKilled(signal);
  if (code !== null && code !== 0) return text.browserExited(code);
  return undefined;
}

/** Watches `child` for a failing exit (see {@link BrowserLaunch}); never keeps the process alive. */
function watch(child: ChildProcess): Promise<string> {
  return new Promise((resolve) => {
    child.once('error', (error: NodeJS.ErrnoException) => resolve(text.browserNotStarted(error.code ?? error.message)));
    child.once('exit', (code, signal) => {
      const failure = exitFailure(code, signal);
      if (failure) resolve(failure);
    });
    child.unref();
  });
}

/**
 * Opens `url`. The child is detached from our stdio (stdout is the tunnel) and does not keep
 * burrow alive; its exit status is watched.
 */
export async function openUrl(choice: BrowserChoice, url: string, env: NodeJS.ProcessEnv): Promise<BrowserLaunch> {
  if (choice.kind === 'none') return { started: false };
  if (choice.kind === 'command') {
    const child = spawn(choice.command, commandArgs(choice.args, url), { stdio: 'ignore', env, detached: false });
    return new Promise((resolve) => {
      const onError = (error: NodeJS.ErrnoException) =>
        resolve({ started: false, reason: error.code === 'ENOENT' ? text.browserNotFound : text.browserNotStarted(error.code ?? error.message) });
      child.once('error', onError);
      child.once('spawn', () => {
        child.off('error', onError);
        resolve({ started: true, failure: watch(child) });
      });
    });
  }
  try {
    const { default: open } = await importExternal<typeof import('open')>('open');
    const child = await open(url, { wait: false });
    return { started: true, failure: watch(child) };
  } catch (error) {
    return { started: false, reason: text.browserNotStarted((error as Error).message) };
  }
}

/** Names the browser of `choice` in a message: `the browser command "x"`, `the default browser`. */
export function browserName(choice: BrowserChoice): string {
  return choice.kind === 'command' ? text.browserCommandName(choice.command, choice.source === 'BROWSER') : text.defaultBrowserName;
}
