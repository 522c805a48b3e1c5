/**
 * Bundles the CLI with esbuild into two CommonJS files in dist/bin/: burrow.cjs (src/cli/main.ts,
 * everything the CLI runs) and loader.cjs (src/cli/loader.ts, which loads burrow.cjs with a V8
 * code cache). One file to load instead of dozens of modules, because every ssh ProxyCommand
 * pays the start-up again (docs/performance.md). Dependencies with native parts or rarely used
 * (@napi-rs/keyring, ws, undici, open) stay external and are loaded on demand; everything else (chalk,
 * commander, env-paths, yaml) is inlined, so those are devDependencies (docs/architecture.md). yaml is
 * reached only through a dynamic import, which esbuild turns into a lazy module wrapper: it runs only
 * when there is a config file to parse.
 *
 * Two values are fixed at build time: package.json's version goes into burrow.cjs (no
 * package.json is read at run time, whatever the package is named), and the
 * SHA-256 of the finished burrow.cjs goes into loader.cjs, which keys the code cache by it: a
 * bundle's size and modification time say nothing about its content (a tarball extracts with
 * fixed times), and V8 itself checks only the source's length.
 *
 * CommonJS, not ESM: Node 20 can cache compiled code only for scripts (`vm.Script`), and a
 * CommonJS entry never starts the ESM loader. Measured with the code cache, A/B against the ESM
 * bundle with its lazily loaded chunks: 10-12 ms less (median) from spawn to the first tunnelled
 * byte.
 */
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { build } from 'esbuild';

const OUT = 'dist/bin';
const pkg = JSON.parse(readFileSync('package.json', 'utf8'));

/** What both files share. */
const common = {
  outdir: OUT,
  outExtension: { '.js': '.cjs' },
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  external: ['@napi-rs/keyring', 'ws', 'undici', 'open'],
  // runtime.ts finds package.json from its own location when it runs unbundled.
  banner: { js: "const __burrowModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
};

rmSync(OUT, { recursive: true, force: true });
await build({
  ...common,
  entryPoints: { burrow: 'src/cli/main.ts' },
  define: {
    'import.meta.url': '__burrowModuleUrl',
    __BURROW_VERSION__: JSON.stringify(pkg.version),
  },
});
const bundleHash = createHash('sha256').update(readFileSync(`${OUT}/burrow.cjs`)).digest('hex');
await build({
  ...common,
  entryPoints: { loader: 'src/cli/loader.ts' },
  define: { 'import.meta.url': '__burrowModuleUrl', __BURROW_BUNDLE_SHA256__: JSON.stringify(bundleHash) },
});
