/**
 * `burrow completion <shell>` against the real shells: the printed script is loaded into bash,
 * zsh and fish, and each shell's own completion machinery is asked to complete command lines:
 * subcommands, flags, the choices of --transport / --log-level / --credential-store, file names
 * after flags that take a path, and nested subcommands. The expected flags come from the
 * commander program itself, so a flag added later must show up without touching this test.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { program } from '../../src/cli/main.js';
import { processRuntime } from '../../src/cli/runtime.js';
import { describeCommand } from '../../src/cli/completion/spec.js';
import { ExitCode } from '../../src/errors.js';
import { LOG_LEVELS } from '../../src/output/log.js';
import { runBurrow, stopAll, tempDir } from '../helpers/burrow.js';
import { bashComplete, fishComplete, requireShell, SHELLS, type ShellName, zshComplete } from '../helpers/shells.js';

const sorted = (list: string[]) => [...new Set(list)].sort();

/** The tree as commander defines it: what completion must offer. */
const tree = describeCommand(program(processRuntime()));
const tcp = tree.commands.find((c) => c.name === 'tcp')!;
const tcpLongFlags = tcp.flags.map((f) => f.long!).filter(Boolean);

describe('burrow completion', () => {
  let dir: string;
  const scripts = {} as Record<ShellName, string>;

  before(async () => {
    for (const shell of SHELLS) requireShell(shell);
    dir = tempDir('burrow-completion-');
    // Files for path completion: a PEM, a key and a directory, plus something that is not a match.
    mkdirSync(join(dir, 'certs'));
    writeFileSync(join(dir, 'company-ca.pem'), '');
    writeFileSync(join(dir, 'company-key.pem'), '');
    writeFileSync(join(dir, 'other.txt'), '');
    for (const shell of SHELLS) {
      const result = await runBurrow(['completion', shell]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stderr, '');
      scripts[shell] = join(dir, `burrow.${shell}`);
      writeFileSync(scripts[shell], result.stdout);
    }
  });
  after(stopAll);

  it('rejects an unknown shell with a usage error naming the choices (exit 2)', async () => {
    const result = await runBurrow(['completion', 'powershell']);
    assert.equal(result.code, ExitCode.usage);
    assert.match(result.stderr, /^burrow: error: .*powershell.*bash, zsh or fish/);
    assert.equal(result.stdout.length, 0);
  });

  it('the tree it is generated from is the real one (subcommands, choices, path flags)', () => {
    assert.deepEqual(sorted(tree.commands.map((c) => c.name)), sorted(['tcp', 'udp', 'proxy', 'login', 'logout', 'cache', 'status', 'ssh-config', 'token', 'routes', 'doctor', 'k8s', 'version', 'completion', 'config', 'up', 'help']));
    const value = (name: string) => tcp.flags.find((f) => f.long === name)?.value;
    assert.deepEqual(value('--transport'), { name: 'kind', kind: 'choices', choices: ['auto', 'connect', 'websocket'] });
    assert.deepEqual(value('--log-level'), { name: 'level', kind: 'choices', choices: [...LOG_LEVELS] });
    assert.equal(value('--alternate-ca-path')?.kind, 'file');
    assert.equal(value('--browser-cmd')?.kind, 'command');
    assert.equal(value('--listen')?.kind, 'any');
    assert.equal(value('--verbose'), undefined, 'a switch takes no value');
  });

  /** Each case: the line typed (ends where TAB is pressed), and what the shell must offer. */
  const cases: Array<{ line: string; expect: string[] | ((got: string[]) => void); what: string }> = [
    { what: 'subcommands', line: 'burrow ', expect: ['cache', 'completion', 'config', 'doctor', 'help', 'k8s', 'login', 'logout', 'proxy', 'routes', 'ssh-config', 'status', 'tcp', 'token', 'udp', 'up', 'version'] },
    { what: 'a subcommand prefix', line: 'burrow lo', expect: ['login', 'logout'] },
    { what: 'nested subcommands', line: 'burrow cache ', expect: ['clear', 'help', 'location'] },
    { what: 'k8s subcommands', line: 'burrow k8s ', expect: ['exec-credential', 'flush-credentials', 'help', 'kubeconfig'] },
    { what: 'config subcommands', line: 'burrow config ', expect: ['check', 'help', 'path', 'show'] },
    { what: "tcp's flags", line: 'burrow tcp --', expect: (got) => assert.deepEqual(sorted(got.filter((g) => g.startsWith('--'))), sorted(tcpLongFlags)) },
    { what: 'a flag prefix', line: 'burrow tcp --tr', expect: ['--transport'] },
    { what: "up's --print-service choices", line: 'burrow up --print-service ', expect: ['launchd', 'systemd'] },
    { what: '--transport choices', line: 'burrow tcp --transport ', expect: ['auto', 'connect', 'websocket'] },
    { what: '--log-level choices after other flags and values', line: 'burrow tcp --listen 2202 -v --log-level ', expect: [...LOG_LEVELS] },
    { what: '--credential-store choices', line: 'burrow login https://p.example --credential-store ', expect: ['file', 'keychain'] },
    { what: 'file names after --alternate-ca-path', line: 'burrow tcp --alternate-ca-path company', expect: ['company-ca.pem', 'company-key.pem'] },
    { what: 'file names after --client-key', line: 'burrow tcp git.example:22 --client-key oth', expect: ['other.txt'] },
    { what: 'the shell argument of completion', line: 'burrow completion ', expect: ['bash', 'fish', 'zsh'] },
    { what: 'flags of a nested subcommand', line: 'burrow cache clear --cred', expect: ['--credential-store'] },
  ];

  /** fish and zsh print file matches with their directory part as typed; compare base names. */
  const base = (got: string[]) => sorted(got.map((g) => g.replace(/^.*\//, '')));

  for (const shell of SHELLS) {
    describe(shell, () => {
      for (const c of cases) {
        it(`completes ${c.what}: "${c.line}"`, () => {
          const got =
            shell === 'bash'
              ? bashComplete(scripts.bash, bashWords(c.line), dir)
              : shell === 'zsh'
                ? zshComplete(scripts.zsh, c.line, dir)
                : fishComplete(scripts.fish, c.line, dir);
          if (typeof c.expect === 'function') c.expect(got);
          else assert.deepEqual(base(got), sorted(c.expect), `${shell} offered: ${got.join(' ')}`);
        });
      }
    });
  }

  it('bash: "--transport=" (split at "=" by COMP_WORDBREAKS) still completes the value', () => {
    assert.deepEqual(sorted(bashComplete(scripts.bash, ['burrow', 'tcp', '--transport', '=', 'web'], dir)), ['websocket']);
  });

  it('zsh and fish: "--transport=" in one word completes the value', () => {
    assert.deepEqual(zshComplete(scripts.zsh, 'burrow tcp --transport=c', dir), ['connect']);
    assert.deepEqual(fishComplete(scripts.fish, 'burrow tcp --transport=c', dir), ['--transport=connect']);
  });

  it('no file names where a flag takes free text or at a subcommand', () => {
    assert.deepEqual(bashComplete(scripts.bash, ['burrow', 'tcp', '--listen', 'comp'], dir), []);
    assert.deepEqual(fishComplete(scripts.fish, 'burrow tcp --listen comp', dir), []);
    assert.deepEqual(fishComplete(scripts.fish, 'burrow comp', dir), ['completion']);
  });
});

/** How bash hands words to a completion function for `line` (a trailing space = an empty word). */
function bashWords(line: string): string[] {
  const words = line.split(' ').filter((w, i, all) => w !== '' || i === all.length - 1);
  return words;
}
