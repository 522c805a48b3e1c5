#!/usr/bin/env node
// A thin shim: cache compiled code between runs (start-up matters for ProxyCommand), then run.
import module from 'node:module';

module.enableCompileCache?.();
const { run } = await import('../dist/src/cli/main.js');
await run();
