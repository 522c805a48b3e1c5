/**
 * Picks the credential store: `--credential-store`, else BURROW_CREDENTIAL_STORE, else auto (the OS
 * keychain when it works, files otherwise). A keychain that is locked or absent falls back to files
 * with one line saying so when a sign-in is first stored there, never silently; one asked for explicitly that does not work is an error.
 *
 * Importing this module loads no native code: @napi-rs/keyring is imported by keychain.ts only when a keychain
 * is actually tried.
 */
import { CredentialStoreError, UsageError } from '../errors.js';
import { cacheDir } from './cache-dir.js';
import { text } from '../output/messages.js';
import { FileStore } from './file.js';
import { loadKeychain } from './keychain.js';
import type { CredentialStore } from './store.js';

/** `auto` is what leaving the flag out means; it is accepted spelled out too. */
export type StoreChoice = 'keychain' | 'file' | 'auto';

/** Parses `--credential-store` / BURROW_CREDENTIAL_STORE; a UsageError (BURROW_USAGE) for anything else. */
export function parseStoreChoice(value: string): StoreChoice {
  const choice = value.trim().toLowerCase();
  if (choice === 'keychain' || choice === 'file' || choice === 'auto') return choice;
  throw new UsageError(text.invalidCredentialStore(value), { hint: text.invalidCredentialStoreHint });
}

export interface SelectStoreOptions {
  /** From `--credential-store`; undefined = BURROW_CREDENTIAL_STORE, else auto. */
  choice?: StoreChoice | undefined;
  env: NodeJS.ProcessEnv;
  /** Receives the one fallback line (auto without a keychain) and lines about damaged credential files. */
  warn: (line: string) => void;
  /**
   * Receives lines that must be said at once, even by a command that only reads (a credential
   * file or directory that was open to other users); default `warn`.
   */
  warnNow?: ((line: string) => void) | undefined;
  /** Bound on each keychain call (tests shorten it). */
  keychainTimeoutMs?: number | undefined;
  /** The proxy whose credential is read first, if known: lets a working keychain skip its probe. */
  peek?: string | undefined;
  /** Told at once why the keychain is not used when auto falls back to files (`burrow doctor` shows it). */
  onFallback?: ((reason: string) => void) | undefined;
}

export async function selectStore(options: SelectStoreOptions): Promise<CredentialStore> {
  const { env, warn } = options;
  const fromEnv = env.BURROW_CREDENTIAL_STORE;
  const choice = options.choice ?? (fromEnv ? parseStoreChoice(fromEnv) : 'auto');
  // Each damaged file is worth one line per process, however often it is read.
  const warned = new Set<string>();
  const onCorrupt = (path: string) => {
    if (warned.has(path)) return;
    warned.add(path);
    warn(text.credentialFileCorrupt(path));
  };
  const files = () => new FileStore(cacheDir(env), { onCorrupt, onInsecure: options.warnNow ?? warn });
  if (choice === 'file') return files();

  const keychain = await loadKeychain({ env, timeoutMs: options.keychainTimeoutMs, peek: options.peek });
  if (!('unavailable' in keychain)) return keychain;
  if (choice === 'keychain') {
    throw new CredentialStoreError(text.keychainRequired(keychain.unavailable), { hint: text.keychainRequiredHint });
  }
  // Also when @napi-rs/keyring is not installed or there is no D-Bus at all (servers): normal there, but a
  // token in a file instead of a keychain is worth one line, said when a token is stored there.
  // Commands that only read, list or forget sign-ins (status, logout, cache) store nothing: to
  // them it would be noise on every run of a machine without a keychain.
  const store = files();
  options.onFallback?.(keychain.unavailable);
  return announceOnSave(store, () => warn(text.keychainFallback(keychain.unavailable, store.location())));
}

/** `store`, saying `announce()` once, just before its first save. */
function announceOnSave(store: CredentialStore, announce: () => void): CredentialStore {
  let said = false;
  return {
    kind: store.kind,
    location: () => store.location(),
    get: (proxy) => store.get(proxy),
    set: async (credential) => {
      if (!said) {
        said = true;
        announce();
      }
      return store.set(credential);
    },
    delete: (proxy) => store.delete(proxy),
    list: () => store.list(),
    clear: () => store.clear(),
  };
}
