#!/usr/bin/env node
// A thin shim into the bundled CLI (dist/bin/, built by `npm run build`): one file to load
// instead of dozens of modules, because every ssh ProxyCommand pays the start-up again.
import module from 'node:module';

module.enableCompileCache?.();
const { run } = await import('../dist/bin/main.js');
await run();
