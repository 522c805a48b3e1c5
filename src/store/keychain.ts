/**
 * The OS keychain credential store, through @napi-rs/keyring (keyring-rs): macOS Keychain, Windows
 * Credential Manager, or on Linux a Secret Service (gnome-keyring, KWallet) over D-Bus. One entry per proxy: service
 * "burrow", account = the proxy origin, password = the same JSON the file store writes (token
 * included: the keychain is the place for it).
 *
 * @napi-rs/keyring is an optional native dependency (a prebuilt addon per platform), loaded only
 * here and only when asked for, so `burrow` starts without it and works where no build exists.
 * Every call is bounded: a Secret Service that is stuck, or waiting on an unlock prompt nobody will
 * answer, must cost seconds, not a hang.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CredentialStoreError } from '../errors.js';
import { text } from '../output/messages.js';
import { decodeCredential, encodeCredential, summarize } from './file.js';
import type { CredentialStore, CredentialSummary, StoredCredential } from './store.js';
import { requireExternal } from '../external.js';

/** The keychain's service name for every burrow entry. */
export const KEYCHAIN_SERVICE = 'burrow';
/** Written and removed again by the probe; not an origin, so it never clashes with an entry. */
const PROBE_ACCOUNT = 'burrow-probe';
/** How long one keychain call may take: a locked or absent keychain must not hang a tunnel. */
export const KEYCHAIN_TIMEOUT_MS = 3000;

/** The keychain calls burrow makes, by service and account (see keyringAccess for the binding). */
export interface KeychainAccess {
  getPassword(service: string, account: string): Promise<string | null>;
  setPassword(service: string, account: string, password: string): Promise<void>;
  deletePassword(service: string, account: string): Promise<boolean>;
  findCredentials(service: string): Promise<Array<{ account: string; password: string }>>;
}

/** The part of @napi-rs/keyring burrow uses. Typed here because the package, being optional, may be absent at build time. */
interface NapiKeyring {
  AsyncEntry: new (service: string, account: string, options?: { linux?: { store?: 'secret-service' | 'keyutils' } }) => {
    getPassword(): Promise<string | null>;
    setPassword(password: string): Promise<void>;
    deletePassword(): Promise<boolean>;
  };
  findCredentialsAsync(service: string): Promise<Array<{ account: string; password: string }>>;
}

export interface KeychainOptions {
  /** Looked at for the D-Bus session on Linux. The binding itself reads the real process environment. */
  env: NodeJS.ProcessEnv;
  /** Bound on each keychain call; default KEYCHAIN_TIMEOUT_MS. */
  timeoutMs?: number | undefined;
  /**
   * The proxy whose credential is about to be read. If the keychain holds it, that read proves
   * the keychain works and the probe's write and delete are skipped (5-40 ms of D-Bus and disk
   * writes on every ssh otherwise); the credential is handed to the next get() of that proxy.
   */
  peek?: string | undefined;
}

/**
 * Loads @napi-rs/keyring and checks that the keychain really answers and accepts entries. Returns
 * the store, or a short human reason why not ("@napi-rs/keyring is not installed", "no D-Bus
 * session", "the keychain is locked", "the keychain did not answer within 3 s", …), never a stack.
 *
 * The check writes and removes a probe entry, unless `peek` finds a credential. Reading nothing is
 * not enough: a locked Secret Service answers lookups with "nothing there" and only refuses writes.
 */
export async function loadKeychain(options: KeychainOptions): Promise<KeychainStore | { unavailable: string }> {
  const noBus = await missingSessionBus(options.env);
  if (noBus !== undefined) return { unavailable: noBus };
  let access: KeychainAccess;
  try {
    access = keyringAccess(await importKeyring());
  } catch (error) {
    return { unavailable: loadFailure(error) };
  }
  const store = new KeychainStore(access, options);
  // A locked keychain answers reads with "nothing there", so only a credential found proves it.
  if (options.peek !== undefined && (await store.prime(options.peek))) return store;
  const failure = await store.probe();
  return failure === undefined ? store : { unavailable: failure };
}

/** Credentials in the OS keychain; get one from loadKeychain, which checks it works. */
export class KeychainStore implements CredentialStore {
  readonly kind = 'keychain' as const;
  readonly #access: KeychainAccess;
  readonly #timeoutMs: number;
  /**
   * Set once a call timed out (here or in D-Bus): that call may still occupy a libuv thread (it
   * cannot be cancelled), so later calls fail at once instead of piling up more stuck threads.
   */
  #stuck: string | undefined;
  /** The credential read by prime(), given out once by the next get() of its proxy. */
  #primed: StoredCredential | undefined;

  constructor(access: KeychainAccess, options: { timeoutMs?: number | undefined } = {}) {
    this.#access = access;
    this.#timeoutMs = options.timeoutMs ?? KEYCHAIN_TIMEOUT_MS;
  }

  location(): string {
    return `the OS keychain (service ${JSON.stringify(KEYCHAIN_SERVICE)})`;
  }

  /** Writes and removes a probe entry; the reason it failed, or undefined when the keychain works. */
  async probe(): Promise<string | undefined> {
    try {
      await this.#call((k) => k.setPassword(KEYCHAIN_SERVICE, PROBE_ACCOUNT, String(Date.now())));
      await this.#call((k) => k.deletePassword(KEYCHAIN_SERVICE, PROBE_ACCOUNT));
      return undefined;
    } catch (error) {
      return reasonOf(error);
    }
  }

  /** Reads `proxy`'s credential ahead of use; true if there was one (failures count as none). */
  async prime(proxy: string): Promise<boolean> {
    this.#primed = await this.get(proxy).catch(() => undefined);
    return this.#primed !== undefined;
  }

  /** An entry that is not burrow's JSON (written by another tool, or damaged) counts as absent. */
  async get(proxy: string): Promise<StoredCredential | undefined> {
    const primed = this.#primed;
    this.#primed = undefined;
    if (primed?.proxy === proxy) return primed;
    const password = await this.#guarded('read', (k) => k.getPassword(KEYCHAIN_SERVICE, proxy));
    return password === null ? undefined : decodeCredential(password, proxy);
  }

  async set(credential: StoredCredential): Promise<void> {
    await this.#guarded('save', (k) => k.setPassword(KEYCHAIN_SERVICE, credential.proxy, encodeCredential(credential)), credential.token);
  }

  async delete(proxy: string): Promise<boolean> {
    return this.#guarded('remove', (k) => k.deletePassword(KEYCHAIN_SERVICE, proxy));
  }

  async list(): Promise<CredentialSummary[]> {
    const summaries: CredentialSummary[] = [];
    for (const { account, password } of await this.#accounts('list')) {
      const credential = decodeCredential(password, account);
      if (credential !== undefined) summaries.push(summarize(credential));
    }
    return summaries.sort((a, b) => (a.proxy < b.proxy ? -1 : a.proxy > b.proxy ? 1 : 0));
  }

  async clear(): Promise<number> {
    let removed = 0;
    for (const { account } of await this.#accounts('remove')) {
      if (await this.#guarded('remove', (k) => k.deletePassword(KEYCHAIN_SERVICE, account))) removed++;
    }
    return removed;
  }

  async #accounts(action: 'list' | 'remove'): Promise<Array<{ account: string; password: string }>> {
    const all = await this.#guarded(action, (k) => k.findCredentials(KEYCHAIN_SERVICE));
    return all.filter(({ account }) => account !== PROBE_ACCOUNT);
  }

  /** A keychain call as a CredentialStoreError with a short reason, `secret` scrubbed from it. */
  async #guarded<T>(action: 'read' | 'save' | 'remove' | 'list', work: (k: KeychainAccess) => Promise<T>, secret?: string): Promise<T> {
    try {
      return await this.#call(work);
    } catch (error) {
      let reason = reasonOf(error);
      // No backend is known to echo a password, but the rule is "no token in an error", whatever a
      // future binding or platform backend says.
      if (secret) reason = reason.split(secret).join('[hidden]');
      throw new CredentialStoreError(text.credentialStoreFailed(action, this.location(), reason), {
        hint: text.keychainRequiredHint,
        cause: secret && error instanceof Error && error.message.includes(secret) ? undefined : error,
      });
    }
  }

  async #call<T>(work: (k: KeychainAccess) => Promise<T>): Promise<T> {
    if (this.#stuck !== undefined) throw new KeychainTimeout(this.#stuck);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.#stuck = `did not answer within ${formatSeconds(this.#timeoutMs)}`;
        reject(new KeychainTimeout(this.#stuck));
      }, this.#timeoutMs);
    });
    try {
      // Creating an entry connects to the keychain synchronously: keep such a throw inside the promise.
      return await Promise.race([Promise.resolve().then(() => work(this.#access)), timeout]);
    } catch (error) {
      // D-Bus gave up waiting for the Secret Service (its own reply timeout, about 2 s).
      if (!(error instanceof KeychainTimeout) && NO_REPLY.test(errorMessage(error))) this.#stuck = 'did not answer';
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }
}

class KeychainTimeout extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

function formatSeconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}

/** What D-Bus says when the other side did not answer in time. */
const NO_REPLY = /Did not receive a reply|NoReply/i;

/** @napi-rs/keyring, typed here: TypeScript must not need its types to build (it is optional). */
async function importKeyring(): Promise<NapiKeyring> {
  // The package is CommonJS: required, not imported (see requireExternal).
  const keyring = requireExternal<Partial<NapiKeyring>>('@napi-rs/keyring');
  if (typeof keyring.AsyncEntry !== 'function' || typeof keyring.findCredentialsAsync !== 'function') {
    throw new Error('@napi-rs/keyring does not export AsyncEntry/findCredentialsAsync');
  }
  return keyring as NapiKeyring;
}

/**
 * The keychain calls over @napi-rs/keyring's asynchronous API (its work runs off the main thread).
 * On Linux entries are pinned to the Secret Service: keyring-rs would otherwise fall back to the
 * kernel keyring, which forgets everything at logout and which listing does not see. One entry
 * object per account, since creating one opens a D-Bus connection — synchronously, on the main
 * thread, so a frozen Secret Service holds it until D-Bus gives up (about 2 s), not the timer.
 */
function keyringAccess(keyring: NapiKeyring): KeychainAccess {
  const options = { linux: { store: 'secret-service' as const } };
  const entries = new Map<string, InstanceType<NapiKeyring['AsyncEntry']>>();
  const entry = (service: string, account: string) => {
    const key = JSON.stringify([service, account]);
    let found = entries.get(key);
    if (found === undefined) {
      found = new keyring.AsyncEntry(service, account, options);
      entries.set(key, found);
    }
    return found;
  };
  return {
    getPassword: (service, account) => entry(service, account).getPassword(),
    setPassword: (service, account, password) => entry(service, account).setPassword(password),
    deletePassword: (service, account) => entry(service, account).deletePassword(),
    findCredentials: (service) => keyring.findCredentialsAsync(service),
  };
}

/**
 * On Linux and the BSDs the keychain needs a D-Bus session bus. Without DBUS_SESSION_BUS_ADDRESS, GLib
 * still tries `$XDG_RUNTIME_DIR/bus` and, with an X display, autolaunching one; with none of these
 * (ssh to a server, containers, CI) there is no keychain, and saying so costs no native load.
 */
async function missingSessionBus(env: NodeJS.ProcessEnv): Promise<string | undefined> {
  if (process.platform === 'darwin' || process.platform === 'win32') return undefined;
  if (env.DBUS_SESSION_BUS_ADDRESS || env.DISPLAY) return undefined;
  if (env.XDG_RUNTIME_DIR) {
    const bus = await stat(join(env.XDG_RUNTIME_DIR, 'bus')).catch(() => undefined);
    if (bus?.isSocket()) return undefined;
  }
  return 'no D-Bus session: DBUS_SESSION_BUS_ADDRESS is not set';
}

function loadFailure(error: unknown): string {
  const message = errorMessage(error);
  const code = typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
  // The package is there but holds no prebuilt addon for this platform (or npm skipped it).
  if (/Cannot find native binding|Failed to load native binding/i.test(message)) return '@napi-rs/keyring has no native build for this platform';
  if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') return '@napi-rs/keyring is not installed';
  return `@napi-rs/keyring did not load: ${firstLine(message)}`;
}

/** A few words for what went wrong in a keychain call: the messages of D-Bus/Secret Service, macOS and Windows. */
function reasonOf(error: unknown): string {
  if (error instanceof KeychainTimeout) return `the keychain ${error.reason}`;
  const message = errorMessage(error);
  if (/autolaunch|DBUS_SESSION_BUS_ADDRESS|connect to socket|Could not connect/i.test(message)) return 'no D-Bus session';
  if (/org\.freedesktop\.secrets|ServiceUnknown|not provided by any \.service/i.test(message)) return 'no Secret Service on D-Bus';
  if (NO_REPLY.test(message)) return 'the keychain did not answer';
  // Secret Service: "unlock prompt was dismissed" when the unlock prompt cannot be shown or is
  // closed; macOS over ssh: "User interaction is not allowed."
  if (/locked|unlock prompt was dismissed|interaction is not allowed/i.test(message)) return 'the keychain is locked';
  if (/prompt|dismissed|cancel/i.test(message)) return 'the keychain unlock was cancelled';
  // gnome-keyring with no login keyring, whose creation needs a prompt: "Object does not exist at path
  // “/org/freedesktop/secrets/collection/login”".
  // keyring-rs says "Secret Service: no result found" when there is no default collection to write to.
  if ((/collection/i.test(message) && /does not exist|no such/i.test(message)) || /Secret Service: no result found/i.test(message)) {
    return 'the keychain has no default keyring';
  }
  return firstLine(message);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function firstLine(message: string): string {
  const line = message.split('\n', 1)[0]?.trim() ?? '';
  return line.length > 160 ? `${line.slice(0, 157)}…` : line || 'unknown error';
}
