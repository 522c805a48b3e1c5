/**
 * Where sign-in tokens live between runs. One entry per proxy origin (`https://host:port`).
 * Implementations: the OS keychain (keychain.ts, through @napi-rs/keyring) and files (file.ts). Tokens are
 * handed out only to the tunnel; listings (`burrow status`) get everything but the token.
 */

/** What is stored for one proxy. */
export interface StoredCredential {
  /** The proxy origin, e.g. `https://proxy.corp.example.com:443`: the key. */
  proxy: string;
  /** The raw JWT. Never printed, never logged. */
  token: string;
  /** When to stop sending it (the unverified `exp` less a clock-skew margin), seconds since the epoch. */
  expiresAt?: number | undefined;
  /** The `email` (or `sub`) claim, shown by `burrow status`, if present. */
  user?: string | undefined;
  /** When it was stored, milliseconds since the epoch. */
  storedAt: number;
}

/** A stored credential without its token, for listings. */
export type CredentialSummary = Omit<StoredCredential, 'token'>;

export interface CredentialStore {
  /** `keychain` or `file`. */
  readonly kind: 'keychain' | 'file';
  /** Human description of where entries live (a directory, or "the OS keychain (service burrow)"). */
  location(): string;
  get(proxy: string): Promise<StoredCredential | undefined>;
  set(credential: StoredCredential): Promise<void>;
  /** Returns true if something was removed. */
  delete(proxy: string): Promise<boolean>;
  list(): Promise<CredentialSummary[]>;
  /** Removes every entry; returns how many. */
  clear(): Promise<number>;
}
