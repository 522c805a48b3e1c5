/**
 * Bundles the CLI (src/cli/main.ts) into dist/bin/ with esbuild: one file to load instead of
 * dozens of modules, because every ssh ProxyCommand pays the start-up again (README
 * "Performance"). Dependencies with native parts or rarely used (keytar, ws, undici, open) stay
 * external and are imported lazily where needed.
 *
 * Node's built-in modules are loaded with `require`, not `import`: an ESM import of a built-in
 * builds a facade over all its exports, which touches lazy getters (node:crypto's webcrypto,
 * for one). Measured: 5-7 ms less from spawn to the first tunnelled byte.
 */
import { rmSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { build } from 'esbuild';

const BUILTINS = new Set(builtinModules);
const OUT = 'dist/bin';

/** Resolves `node:x` (and bare built-in names) to `module.exports = require('node:x')`. */
const builtinsViaRequire = {
  name: 'builtins-via-require',
  setup(b) {
    b.onResolve({ filter: /^(node:)?[a-z_/]+$/ }, (args) => {
      if (args.namespace === 'builtin' || !BUILTINS.has(args.path.replace(/^node:/, ''))) return undefined;
      return { path: args.path, namespace: 'builtin' };
    });
    b.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
  },
};

rmSync(OUT, { recursive: true, force: true });
await build({
  entryPoints: ['src/cli/main.ts'],
  outdir: OUT,
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['keytar', 'ws', 'undici', 'open'],
  // `require` for the built-ins above (and for CommonJS dependencies such as commander).
  banner: { js: "import { createRequire as __burrowRequire } from 'node:module'; const require = __burrowRequire(import.meta.url);" },
  plugins: [builtinsViaRequire],
  logLevel: 'warning',
});
