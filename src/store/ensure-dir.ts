/**
 * `mkdir -p` that always ends. Node's `mkdir(path, { recursive: true })` loops forever (and
 * spins a CPU) where mkdir(2) answers ENOENT for a name whose parent exists, as under /proc
 * and on some FUSE mounts: a cache directory set to such a place would hang every burrow.
 */
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/** Creates `path` and any missing parents with `mode`; fails with mkdir's own error. */
export async function ensureDir(path: string, mode: number): Promise<void> {
  const missing: string[] = [];
  let dir = resolve(path);
  // Walk up to the first directory that exists (or is created), at most one step per component.
  for (let depth = 0; depth < 256; depth++) {
    try {
      await mkdir(dir, { mode });
      break;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') break;
      const parent = dirname(dir);
      if (code !== 'ENOENT' || parent === dir) throw error;
      missing.push(dir);
      dir = parent;
    }
  }
  // Then down again; a parent that still cannot hold the child fails here, once.
  for (const child of missing.reverse()) {
    try {
      await mkdir(child, { mode });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
}
