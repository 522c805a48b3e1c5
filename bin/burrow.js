#!/usr/bin/env node
// A thin shim into the bundled CLI (dist/bin/, built by `npm run build`). CommonJS (bin/package.json
// says so), like the bundle: every ssh ProxyCommand pays the start-up again, and Node 20 caches
// compiled code only for scripts; the loader keeps that cache (src/cli/loader.ts).
'use strict';
const { join } = require('node:path');

// Every chunk a tunnel moves leaves a little garbage; by default V8 lets the young generation
// grow to 32 MiB before collecting it, which made most of a busy listener's memory. Kept at its
// initial 2 MiB instead: peak RSS with 1,000 tunnels fell by a third (README "Performance").
// Set before any code is compiled: the code cache is only valid under the same flags.
require('node:v8').setFlagsFromString('--semi-space-growth-factor=1');
require('../dist/bin/loader.cjs').start(join(__dirname, '..', 'dist', 'bin', 'burrow.cjs'));
