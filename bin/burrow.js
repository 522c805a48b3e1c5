#!/usr/bin/env node
// A thin shim into the bundled CLI (dist/bin/, built by `npm run build`): one file to load
// instead of dozens of modules, because every ssh ProxyCommand pays the start-up again.
import module from 'node:module';
import { setFlagsFromString } from 'node:v8';

// Every chunk a tunnel moves leaves a little garbage; by default V8 lets the young generation
// grow to 32 MiB before collecting it, which made most of a busy listener's memory. Kept at its
// initial 2 MiB instead: peak RSS with 1,000 tunnels fell by a third (README "Performance").
setFlagsFromString('--semi-space-growth-factor=1');
module.enableCompileCache?.();
const { run } = await import('../dist/bin/main.js');
await run();
