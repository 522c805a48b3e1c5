/**
 * Bundles the CLI with esbuild into CommonJS files in dist/bin/: burrow.cjs (src/cli/main.ts,
 * everything the CLI runs but its parts), yaml.cjs (the YAML parser, a part: see below) and
 * loader.cjs (src/cli/loader.ts, which loads the others with a V8 code cache). One file to load
 * instead of dozens of modules, because every ssh ProxyCommand pays the start-up again
 * (docs/performance.md). Dependencies with native parts or rarely used (@napi-rs/keyring, ws,
 * undici, open) stay external and are loaded on demand; everything else (chalk, commander,
 * env-paths, yaml) is inlined, so those are devDependencies (docs/architecture.md).
 *
 * A part is a large dependency few runs need, bundled on its own and loaded through the loader
 * when first imported (src/external.ts `importPart`), with a code cache of its own: yaml, a third
 * of the code, needed only when there is a config file to parse. Every start-up reads and
 * compiles the main bundle, ~1 ms per 100 KB here, so it holds only what a run may need.
 *
 * Two values are fixed at build time: package.json's version goes into burrow.cjs (no
 * package.json is read at run time, whatever the package is named), and the SHA-256 of each
 * finished bundle goes into loader.cjs, which keys the code caches by them: a bundle's size and
 * modification time say nothing about its content (a tarball extracts with fixed times), and V8
 * itself checks only the source's length.
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
  // Spaces and comments out (a third of the bytes each start-up reads); names kept.
  minifyWhitespace: true,
  // runtime.ts finds package.json from its own location when it runs unbundled.
  banner: { js: "const __burrowModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
};

/** The parts: name → what the part's file exports (src/external.ts `BundledPart`). */
const PARTS = { yaml: "module.exports = require('yaml');" };

rmSync(OUT, { recursive: true, force: true });
await build({
  ...common,
  entryPoints: { burrow: 'src/cli/main.ts' },
  // The parts are imported through the loader, never from the bundle itself.
  external: [...common.external, ...Object.keys(PARTS)],
  define: {
    'import.meta.url': '__burrowModuleUrl',
    __BURROW_VERSION__: JSON.stringify(pkg.version),
  },
});
for (const [name, contents] of Object.entries(PARTS)) {
  await build({ ...common, stdin: { contents, resolveDir: '.', sourcefile: `${name}-part.cjs` }, outdir: undefined, outfile: `${OUT}/${name}.cjs` });
}
const sha256 = (name) => createHash('sha256').update(readFileSync(`${OUT}/${name}.cjs`)).digest('hex');
const hashes = Object.fromEntries(['burrow', ...Object.keys(PARTS)].map((name) => [name, sha256(name)]));
await build({
  ...common,
  entryPoints: { loader: 'src/cli/loader.ts' },
  define: { 'import.meta.url': '__burrowModuleUrl', __BURROW_BUNDLE_SHA256__: JSON.stringify(hashes) },
});
