/** `burrow version`: the version, and the runtime it runs on (useful in bug reports). */
import type { Command } from 'commander';
import type { Runtime } from '../runtime.js';

export function registerVersion(program: Command, runtime: Runtime): void {
  program
    .command('version')
    .description('print the version')
    .action(() => {
      runtime.stdout.write(`burrow ${runtime.version} (node ${process.versions.node}, ${process.platform}-${process.arch})\n`);
    });
}
