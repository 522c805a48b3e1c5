/**
 * A ready test world: the fake Pomerium proxy with a route `git.corp.test:22` to an echo
 * server, a valid token, and the CLI arguments that point burrow at them.
 */
import { after, before } from 'node:test';
import { stopAll } from './burrow.js';
import { startEchoServer, type TcpServer } from './echo-server.js';
import { type FakePomerium, type FakePomeriumOptions, type FakeRoute, startFakePomerium } from './fake-pomerium.js';

export const DEST = 'git.corp.test:22';

export interface World {
  proxy: FakePomerium;
  echo: TcpServer;
  token: string;
  /** `tcp <dest> --pomerium-url … --alternate-ca-path … --service-account-file …`-style args. */
  tcpArgs(dest?: string, ...extra: string[]): string[];
  /** Environment carrying the token (BURROW_SERVICE_ACCOUNT). */
  env: NodeJS.ProcessEnv;
  close(): Promise<void>;
}

export async function startWorld(options: FakePomeriumOptions & { extraRoutes?: FakeRoute[] } = {}): Promise<World> {
  const echo = await startEchoServer();
  const proxy = await startFakePomerium({
    ...options,
    routes: [{ from: `tcp+https://${DEST}`, to: `tcp://${echo.address}` }, ...(options.extraRoutes ?? []), ...(options.routes ?? [])],
  });
  const token = proxy.mintToken();
  return {
    proxy,
    echo,
    token,
    env: { BURROW_SERVICE_ACCOUNT: token },
    tcpArgs: (dest = DEST, ...extra) => ['tcp', dest, '--pomerium-url', proxy.url, '--alternate-ca-path', proxy.caPath, ...extra],
    async close() {
      await proxy.close();
      await echo.close();
    },
  };
}

/**
 * A world for a whole `describe`: started before its tests; after them every burrow the tests
 * started is stopped and the world closed. Use it like the world itself (it forwards to the one
 * running), from inside tests and hooks only.
 */
export function suiteWorld(options: Parameters<typeof startWorld>[0] = {}): World {
  let current: World | undefined;
  before(async () => {
    current = await startWorld(options);
  });
  after(async () => {
    await stopAll();
    await current?.close();
  });
  return new Proxy({} as World, {
    get(_, key) {
      if (current === undefined) throw new Error('suiteWorld() is started in before(): use it inside tests and hooks');
      return Reflect.get(current, key) as unknown;
    },
  });
}

/** Polls `check` every 20 ms until it is true or `timeoutMs` passes (bounded waits only). */
export async function eventually(check: () => boolean, timeoutMs = 5000, what: string | (() => string) = 'condition'): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Resolves with `promise`'s value, or `onTimeout` after `ms`; the timer never outlives the race. */
export async function within<T>(promise: Promise<T>, ms: number, onTimeout: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<T>((resolve) => (timer = setTimeout(() => resolve(onTimeout), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
