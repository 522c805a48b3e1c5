/**
 * The flag table (src/cli/flags.ts) against the commander program built from it, and what
 * `ssh-config` does with it: every flag it passes on reaches `burrow tcp` with the same value,
 * read back through /bin/sh and tcp's own option parser.
 */
import assert from 'node:assert/strict';
import { relative } from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import type { Command } from 'commander';
import { sshConfigBlock } from '../../src/cli/commands/ssh-config.js';
import { COMMANDS, type CommandName, TUNNEL_COMMANDS } from '../../src/cli/command-table.js';
import { FLAGS, flagsOf, optionOf } from '../../src/cli/flags.js';
import { program } from '../../src/cli/main.js';
import { processRuntime, type Runtime } from '../../src/cli/runtime.js';
import { fixture, readFixture } from '../helpers/fixtures.js';
import { proxyCommand, proxyCommandArgv } from '../helpers/proxy-command.js';

const root = () => program({ ...processRuntime(), stdout: new Writable({ write: (_c, _e, cb) => cb() }), stderr: new Writable({ write: (_c, _e, cb) => cb() }) });

function find(from: Command, path: string): Command | undefined {
  let command: Command | undefined = from;
  for (const name of path.split(' ')) command = command?.commands.find((c) => c.name() === name);
  return command;
}

/** Every command of the tree with its path (`cache clear`). */
function everyCommand(command: Command, path: string[] = []): Array<[string, Command]> {
  return command.commands.flatMap((c) => [[[...path, c.name()].join(' '), c] as [string, Command], ...everyCommand(c, [...path, c.name()])]);
}

describe('the flag table', () => {
  it('each command registers exactly its table entries, in table order, as the table spells them', () => {
    const tree = root();
    for (const name of Object.keys(COMMANDS) as CommandName[]) {
      const command = find(tree, name);
      assert.ok(command, `${name} is a command`);
      const got = command.options.map((o) => [o.flags, o.description, o.defaultValue, o.argChoices]);
      const want = flagsOf(name).map((entry) => {
        const o = optionOf(entry, name);
        return [entry.flags, o.description, o.defaultValue, entry.choices ? [...entry.choices] : undefined];
      });
      assert.deepEqual(got, want, name);
    }
  });

  it('covers every command that has flags; each entry names real commands, and spellings are unique per command', () => {
    for (const [path, command] of everyCommand(root())) {
      if (command.options.length > 0) assert.ok(path in COMMANDS, `${path} takes flags but is not in the command table`);
    }
    for (const name of Object.keys(COMMANDS) as CommandName[]) {
      const longs = flagsOf(name).map((e) => optionOf(e, name).long);
      assert.equal(new Set(longs).size, longs.length, `${name}: a flag is declared twice`);
    }
    for (const entry of FLAGS) {
      assert.ok(entry.commands.length > 0, entry.flags);
      for (const c of entry.commands) assert.ok(c in COMMANDS, `${entry.flags}: ${c}`);
      assert.equal(typeof entry.configurable, 'boolean', entry.flags);
    }
  });

  it('the commands that open tunnels are real commands (the loader keys its code cache on them)', () => {
    const names = root().commands.map((c) => c.name());
    assert.deepEqual([...TUNNEL_COMMANDS], ['tcp', 'udp', 'proxy', 'up']);
    for (const name of TUNNEL_COMMANDS) assert.ok(names.includes(name), name);
  });

  it('ssh-config passes on only flags tcp takes, and every tcp flag but these few', () => {
    for (const entry of FLAGS.filter((e) => e.passOn !== false)) {
      assert.ok(entry.commands.includes('tcp') && entry.commands.includes('ssh-config'), entry.flags);
    }
    // A new tcp flag fails here until someone decides whether ssh-config passes it on.
    const kept = flagsOf('tcp').filter((e) => !(e.commands.includes('ssh-config') && e.passOn !== false)).map((e) => optionOf(e, 'tcp').long);
    assert.deepEqual(kept, ['--listen', '--service-account', '--verbose', '--log-level', '--json']);
  });
});

describe('ssh-config passes each flag on so that burrow tcp reads the same value', () => {
  const runtime = { env: {}, version: '9.9.9', selfCommand: () => ['/usr/bin/node', '/opt/burrow/bin/burrow.js'] } as unknown as Runtime;
  const pem = readFixture('ca.pem');
  /** A value other than the default for every flag ssh-config passes on (what tcp must then read). */
  const samples: Record<string, [given: unknown, tcpReads: unknown]> = {
    '--pomerium-url': ['https://Proxy.corp.test:8443/', 'https://proxy.corp.test:8443'],
    '--connect-timeout': ['7.5', '7.5'],
    '--stall-timeout': ['0', '0'],
    '--max-duration': ['1h30m', '1h30m'],
    '--close-on-token-expiry': [true, true],
    '--transport': ['connect', 'connect'],
    '--ping-interval': ['0.5', '0.5'],
    '--header': [['X-Api-Key: s3cret', "X-Quote: it's 50% 'done'"], ['X-Api-Key: s3cret', "X-Quote: it's 50% 'done'"]],
    '--proxy': ['http://user:p%40ss@squid.corp.test:3128', 'http://user:p%40ss@squid.corp.test:3128'],
    '--no-proxy': [false, false],
    '--browser-cmd': ['/usr/bin/firefox --new-window', '/usr/bin/firefox --new-window'],
    '--no-browser': [false, false],
    '--login-timeout': ['60', '60'],
    '--credential-store': ['file', 'file'],
    // Relative: ssh-config makes it absolute.
    '--service-account-file': [relative(process.cwd(), fixture('client.pem')), fixture('client.pem')],
    '--disable-tls-verification': [true, true],
    '--alternate-ca-path': [fixture('ca.pem'), fixture('ca.pem')],
    '--ca-cert': [pem, Buffer.from(pem.trim()).toString('base64')],
    '--client-cert': [fixture('client.pem'), fixture('client.pem')],
    '--client-key': [fixture('client-key.pem'), fixture('client-key.pem')],
  };

  const passed = flagsOf('ssh-config').filter((e) => e.passOn !== false);
  it('has a sample for every flag passed on', () => {
    assert.deepEqual(passed.map((e) => optionOf(e, 'ssh-config').long).sort(), Object.keys(samples).sort());
  });

  for (const entry of passed) {
    const option = optionOf(entry, 'ssh-config');
    const attribute = option.attributeName();
    it(option.long!, () => {
      const [given, tcpReads] = samples[option.long!]!;
      const values: Record<string, unknown> = { [attribute]: given };
      // The client certificate comes with its key.
      if (attribute === 'clientCert') values.clientKey = fixture('client-key.pem');
      if (attribute === 'clientKey') values.clientCert = fixture('client.pem');
      const argv = proxyCommandArgv(proxyCommand(sshConfigBlock('git.corp.test', values, runtime)));
      assert.deepEqual(argv.slice(0, 6), ['/usr/bin/node', '/opt/burrow/bin/burrow.js', 'tcp', '--listen', '-', 'git.corp.test:22']);
      const tcp = find(root(), 'tcp')!;
      const { operands, unknown } = tcp.parseOptions(argv.slice(3));
      assert.deepEqual(unknown, []);
      assert.deepEqual(operands, ['git.corp.test:22']);
      assert.deepEqual(tcp.opts()[attribute], tcpReads);
      assert.equal(tcp.getOptionValueSource(attribute), 'cli', 'given on the command line, not a default');
    });
  }
});
