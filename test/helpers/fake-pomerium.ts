/**
 * The project's own local Pomerium-compatible proxy. It lives in ./fake-pomerium/ (one file per
 * concern, see its index.ts); this module keeps the import path every test uses.
 */
export * from './fake-pomerium/index.js';
