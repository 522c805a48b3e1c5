#!/usr/bin/env node
// A thin shim into the bundled CLI (dist/bin/, built by `npm run build`). CommonJS (bin/package.json
// says so), like the bundle: every ssh ProxyCommand pays the start-up again, and Node 20 caches
// compiled code only for scripts; the loader keeps that cache (src/cli/loader.ts).
//
// Before it, two checks that cost nothing measurable (a comparison of three numbers; a `try`
// around the require): a Node.js older than package.json's "engines", and a checkout that was
// never built, each get one line instead of a stack trace. Their sentences are here, not in the
// catalogue (src/output/messages.ts): this file must run on any Node, with nothing built. Plain
// old JavaScript for the same reason (no optional chaining, no template literals).
'use strict';

/** package.json "engines": test/e2e/first-contact-output.test.ts checks that the two agree. */
var MINIMUM_NODE = [20, 18, 1];

/** The sentence for a Node.js `version` ("18.19.0") older than MINIMUM_NODE, or undefined. */
function unsupportedNode(version) {
  var parts = String(version).replace(/^v/, '').split('.');
  for (var i = 0; i < MINIMUM_NODE.length; i++) {
    var part = parseInt(parts[i], 10) || 0;
    if (part > MINIMUM_NODE[i]) return undefined;
    if (part < MINIMUM_NODE[i]) {
      return 'burrow: error: burrow needs Node.js ' + MINIMUM_NODE.join('.') + ' or newer, and this is Node.js ' + version +
        ' (' + process.execPath + ') \u2014 install a newer Node.js (https://nodejs.org) and run burrow again';
    }
  }
  return undefined;
}

/** The sentence for a checkout whose dist/ is missing, given where the bundle was looked for. */
function notBuilt(root, missing) {
  return 'burrow: error: burrow is not built: ' + missing + ' is missing \u2014 run "npm run build" in ' + root +
    ' (or "npm ci", which builds too) and run burrow again';
}

function main() {
  var tooOld = unsupportedNode(process.versions.node);
  if (tooOld !== undefined) {
    process.stderr.write(tooOld + '\n');
    process.exitCode = 1;
    return;
  }
  var join = require('node:path').join;
  var root = join(__dirname, '..');
  var loader = join(root, 'dist', 'bin', 'loader.cjs');
  var bundle = join(root, 'dist', 'bin', 'burrow.cjs');
  // Every chunk a tunnel moves leaves a little garbage; by default V8 lets the young generation
  // grow to 32 MiB before collecting it, which made most of a busy listener's memory. Kept at its
  // initial 2 MiB instead: peak RSS with 1,000 tunnels fell by a third (README "Performance").
  // Set before any code is compiled: the code cache is only valid under the same flags.
  require('node:v8').setFlagsFromString('--semi-space-growth-factor=1');
  var start;
  try {
    start = require(loader).start;
  } catch (error) {
    if (error && error.code === 'MODULE_NOT_FOUND' && String(error.message).indexOf(loader) !== -1) {
      process.stderr.write(notBuilt(root, join('dist', 'bin', 'loader.cjs')) + '\n');
      process.exitCode = 1;
      return;
    }
    throw error;
  }
  try {
    start(bundle);
  } catch (error) {
    // start() reads the bundle before running anything of it.
    if (error && error.code === 'ENOENT' && error.path === bundle) {
      process.stderr.write(notBuilt(root, join('dist', 'bin', 'burrow.cjs')) + '\n');
      process.exitCode = 1;
      return;
    }
    throw error;
  }
}

if (require.main === module) main();
module.exports = { unsupportedNode: unsupportedNode, MINIMUM_NODE: MINIMUM_NODE };
