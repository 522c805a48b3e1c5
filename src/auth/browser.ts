/**
 * Getting a URL in front of the user: `--browser-cmd <program>` (run directly, the URL as its
 * only argument, never through a shell, like pomerium-cli's exec.Command), else the default
 * browser through `open`, else nothing: the caller prints the URL. On Linux a session with no
 * DISPLAY/WAYLAND_DISPLAY (a server, an SSH login) has no browser to open.
 */
import { spawn } from 'node:child_process';
import { importExternal } from '../external.js';

export type BrowserChoice = { kind: 'command'; command: string } | { kind: 'default' } | { kind: 'none' };

export interface BrowserOptions {
  browserCmd?: string | undefined;
  noBrowser?: boolean | undefined;
}

/** Decides how to show the sign-in URL, before trying. */
export function chooseBrowser(options: BrowserOptions, env: NodeJS.ProcessEnv, platform: NodeJS.Platform = process.platform): BrowserChoice {
  if (options.noBrowser) return { kind: 'none' };
  if (options.browserCmd) return { kind: 'command', command: options.browserCmd };
  if (env.BROWSER === 'none') return { kind: 'none' };
  if (platform === 'linux' || platform === 'freebsd' || platform === 'openbsd') {
    if (!env.DISPLAY && !env.WAYLAND_DISPLAY) return { kind: 'none' };
  }
  return { kind: 'default' };
}

/**
 * Opens `url`. Resolves true once a browser was started, false when none could be (the caller
 * then prints the URL). The child is detached from our stdio: stdout is the tunnel.
 */
export async function openUrl(choice: BrowserChoice, url: string, env: NodeJS.ProcessEnv): Promise<boolean> {
  if (choice.kind === 'none') return false;
  if (choice.kind === 'command') {
    return new Promise((resolve) => {
      const child = spawn(choice.command, [url], { stdio: 'ignore', env, detached: false });
      child.once('error', () => resolve(false));
      child.once('spawn', () => {
        child.unref();
        resolve(true);
      });
    });
  }
  try {
    const { default: open } = await importExternal<typeof import('open')>('open');
    const child = await open(url, { wait: false });
    child.once('error', () => {});
    child.unref();
    return true;
  } catch {
    return false;
  }
}
