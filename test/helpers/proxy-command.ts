/** Reading back what `burrow ssh-config` writes into a ProxyCommand. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

/** The ProxyCommand of an ssh config block, without its indentation and keyword. */
export function proxyCommand(block: string): string {
  const line = block.split('\n').find((l) => l.startsWith('  ProxyCommand '));
  assert.ok(line, `no ProxyCommand in:\n${block}`);
  return line.slice('  ProxyCommand '.length);
}

/**
 * The argv /bin/sh gives the program of a ProxyCommand once ssh has expanded its tokens (%% to %,
 * %h and %p to `host` and `port`), as ssh runs it.
 */
export function proxyCommandArgv(command: string, host = 'git.corp.test', port = '22'): string[] {
  const expanded = command.replace(/%(%|h|p)/g, (_, t: string) => (t === '%' ? '%' : t === 'h' ? host : port));
  return execFileSync('/bin/sh', ['-c', `printf '%s\\0' ${expanded}`]).toString().split('\0').slice(0, -1);
}
