/**
 * burrow as a user installs it: `npm pack` of this checkout, then `npm install -g` of the tarball
 * into a fresh prefix, and the installed `burrow` command (DIR/bin/burrow) run against the local
 * proxy: its version, a tunnel, `ssh-config`, and a browser sign-in.
 *
 * Without the network: npm resolves the package's dependencies from a registry on loopback that
 * serves, for each production dependency in package-lock.json, its manifest and a tarball packed
 * from node_modules/ (the same versions `npm ci` installed). Names the lockfile does not list as
 * production dependencies (the optional native ones, bufferutil and the keychain binding) are
 * answered 404, so npm installs without them, as it does wherever they fail: burrow then keeps
 * sign-ins in files and ws runs without its native helper. npm's own cache is a temporary one, so
 * the user's cache gets none of this registry's answers.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ISSUES_URL, toBurrowError } from '../../src/errors.js';
import { browserEnv, browserLaunches, followBrowser } from '../helpers/browsers/index.js';
import { storedTokens } from '../helpers/burrow.js';
import { repoRoot } from '../helpers/fixtures.js';
import { DEST, startWorld, type World } from '../helpers/world.js';

interface Pkg {
  name: string;
  version: string;
  files: string[];
  engines: { node: string };
  license: string;
  bugs: { url: string };
  repository: { url: string };
  bin: Record<string, string>;
}
const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as Pkg;

/** What `npm pack --json` says of one tarball. */
interface Packed {
  name: string;
  version: string;
  filename: string;
  integrity: string;
  shasum: string;
  files: { path: string }[];
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `command` to completion within `timeoutMs` (killed after), with exactly `env`. */
function run(command: string, args: string[], options: { env: NodeJS.ProcessEnv; cwd?: string; input?: string; timeoutMs?: number }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: options.env, cwd: options.cwd ?? repoRoot, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal === 'SIGKILL' ? 137 : 128), stdout, stderr });
    });
  });
}

/** The production dependencies `npm ci` installed: their folders under node_modules/, from package-lock.json. */
function productionDependencies(): string[] {
  const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean; optional?: boolean; devOptional?: boolean; link?: boolean }>;
  };
  return Object.entries(lock.packages)
    .filter(([path, entry]) => path !== '' && !entry.dev && !entry.optional && !entry.devOptional && !entry.link)
    .map(([path]) => join(repoRoot, path));
}

/** A registry on loopback serving `packed` (manifests from each folder's package.json); 404 for anything else. */
async function startRegistry(packed: { dir: string; info: Packed; tarball: string }[]): Promise<{ url: string; server: Server; requests: string[] }> {
  const requests: string[] = [];
  const byName = new Map<string, typeof packed>();
  for (const p of packed) byName.set(p.info.name, [...(byName.get(p.info.name) ?? []), p]);
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push(path);
    const tarball = packed.find((p) => path === `/-/${p.info.filename}`);
    if (tarball) {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      createReadStream(tarball.tarball).pipe(res);
      return;
    }
    const versions = byName.get(path.slice(1));
    if (!versions) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      return;
    }
    const base = `http://${req.headers.host}`;
    const manifest = (p: (typeof versions)[number]) => ({
      ...(JSON.parse(readFileSync(join(p.dir, 'package.json'), 'utf8')) as object),
      dist: { tarball: `${base}/-/${p.info.filename}`, integrity: p.info.integrity, shasum: p.info.shasum },
    });
    const latest = versions.at(-1)!.info.version;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ name: path.slice(1), 'dist-tags': { latest }, versions: Object.fromEntries(versions.map((p) => [p.info.version, manifest(p)])) }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, server, requests };
}

describe('the npm package, installed with npm install -g and run as a user runs it', { timeout: 240_000 }, () => {
  let root: string;
  let prefix: string;
  let burrow: string;
  let packedFiles: string[];
  let registry: Awaited<ReturnType<typeof startRegistry>> | undefined;
  let world: World | undefined;
  /** Node first on the PATH: the installed command starts with `#!/usr/bin/env node`. */
  const PATH = `${dirname(process.execPath)}:${process.env.PATH ?? ''}`;
  let home: string;
  let npmEnv: NodeJS.ProcessEnv;

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'burrow-package-'));
    prefix = join(root, 'prefix');
    home = join(root, 'home');
    mkdirSync(home);
    // npm with no user or global configuration of this machine, and a cache of its own.
    npmEnv = { PATH, HOME: home, npm_config_cache: join(root, 'npm-cache'), npm_config_update_notifier: 'false' };
    const packs = join(root, 'packs');
    mkdirSync(packs);
    // dist/ is built (npm test builds before it runs tests): no scripts, so no second build.
    const self = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', packs], { env: npmEnv, timeoutMs: 60_000 });
    assert.equal(self.code, 0, self.stderr);
    const [info] = JSON.parse(self.stdout) as Packed[];
    packedFiles = info!.files.map((f) => f.path).sort();

    const dirs = productionDependencies();
    const deps = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', packs, ...dirs], { env: npmEnv, timeoutMs: 60_000 });
    assert.equal(deps.code, 0, deps.stderr);
    const infos = JSON.parse(deps.stdout) as Packed[];
    assert.equal(infos.length, dirs.length);
    registry = await startRegistry(infos.map((p, i) => ({ dir: dirs[i]!, info: p, tarball: join(packs, p.filename) })));

    const install = await run(
      'npm',
      ['install', '-g', '--prefix', prefix, '--registry', registry.url, '--omit=dev', '--no-audit', '--no-fund', join(packs, info!.filename)],
      { env: npmEnv, timeoutMs: 120_000 },
    );
    assert.equal(install.code, 0, `npm install -g failed:\n${install.stderr}\n${install.stdout}`);
    burrow = join(prefix, 'bin', 'burrow');
    world = await startWorld();
  });

  after(async () => {
    await world?.close();
    if (registry) {
      const closed = new Promise<void>((resolve) => registry!.server.close(() => resolve()));
      registry.server.closeAllConnections();
      await closed;
    }
    rmSync(root, { recursive: true, force: true });
  });

  /** The installed command, with its own cache directory and nothing of this test's environment. */
  function installed(args: string[], env: NodeJS.ProcessEnv = {}, input = ''): Promise<Run> {
    return run(burrow, args, { env: { PATH, HOME: home, NO_COLOR: '1', BURROW_CREDENTIAL_STORE: 'file', ...env }, cwd: root, input });
  }

  it('package.json describes the package: name, engines as bin/burrow.js checks, license text, where to report', () => {
    assert.equal(pkg.name, 'burrow-tunnel');
    assert.deepEqual(Object.keys(pkg.bin), ['burrow']);
    const bin = readFileSync(join(repoRoot, 'bin', 'burrow.js'), 'utf8');
    const minimum = /var MINIMUM_NODE = \[(\d+), (\d+), (\d+)\];/.exec(bin);
    assert.ok(minimum, 'bin/burrow.js states MINIMUM_NODE');
    assert.equal(pkg.engines.node, `>=${minimum.slice(1).join('.')}`);
    assert.equal(pkg.license, 'Apache-2.0');
    const license = readFileSync(join(repoRoot, 'LICENSE'), 'utf8');
    assert.match(license, /^\s*Apache License\n\s*Version 2\.0, January 2004\n/);
    assert.match(license, /END OF TERMS AND CONDITIONS/);
    assert.equal(pkg.bugs.url, ISSUES_URL);
    assert.ok(pkg.repository.url.includes(new URL(ISSUES_URL).pathname.replace(/\/issues$/, '')));
    const hint = toBurrowError(new Error('boom')).hint ?? '';
    assert.ok(hint.includes(ISSUES_URL), `the internal-error hint says where to report: ${hint}`);
  });

  it('the tarball holds what runs and nothing else; the install has only the external dependencies', () => {
    assert.deepEqual(packedFiles, ['LICENSE', 'README.md', 'bin/burrow.js', 'bin/package.json', 'dist/bin/burrow.cjs', 'dist/bin/loader.cjs', 'dist/bin/yaml.cjs', 'package.json']);
    const where = join(prefix, 'lib', 'node_modules', 'burrow-tunnel');
    assert.ok(existsSync(join(where, 'dist', 'bin', 'burrow.cjs')));
    const modules = readdirSync(join(where, 'node_modules')).filter((n) => !n.startsWith('.'));
    // Bundled into dist/bin/burrow.cjs (yaml into dist/bin/yaml.cjs), so not installed.
    for (const bundled of ['chalk', 'commander', 'env-paths', 'yaml']) assert.ok(!modules.includes(bundled), `${bundled} is bundled, not installed`);
    for (const external of ['open', 'undici', 'ws']) assert.ok(modules.includes(external), `${external} is installed (${modules.join(', ')})`);
    assert.ok(registry!.requests.every((r) => !r.includes('chalk') && !r.includes('commander')), 'npm never asked for the bundled ones');
  });

  it('--version prints package.json\'s version', async () => {
    const result = await installed(['--version']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${pkg.version}\n`);
    assert.equal(result.stderr, '');
  });

  it('a tunnel through the local proxy (stdio mode, service account) carries bytes both ways', async () => {
    const cache = join(root, 'cache-tunnel');
    const data = 'through the installed burrow\n'.repeat(100);
    const args = world!.tcpArgs(DEST, '--listen', '-');
    const first = await installed(args, { ...world!.env, XDG_CACHE_HOME: cache }, data);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, data);
    assert.equal(first.stderr, '');
    assert.ok(readdirSync(join(cache, 'burrow', 'code-cache')).length === 1, 'the first run left its code cache');
    const second = await installed(args, { ...world!.env, XDG_CACHE_HOME: cache }, 'again');
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout, 'again');
  });

  it('a config file is read by the installed burrow (its YAML parser is the part beside the bundle)', async () => {
    const config = join(root, 'config-installed', 'burrow');
    mkdirSync(config, { recursive: true });
    writeFileSync(join(config, 'config.yaml'), 'defaults:\n  log-level: debug\ntunnels:\n  git: { destination: git.corp.test:22, listen: 127.0.0.1:2202 }\n');
    const result = await installed(['config', 'check'], { XDG_CONFIG_HOME: dirname(config), XDG_CACHE_HOME: join(root, 'cache-config') });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /config\.yaml: ok \(1 default, 1 tunnel\)/);
    assert.deepEqual(readdirSync(join(root, 'cache-config', 'burrow', 'code-cache')).map((n) => n.split('-')[0]).sort(), ['burrow', 'yaml'], 'each with its code cache');
  });

  it('ssh-config names the installed burrow in its ProxyCommand', async () => {
    const result = await installed(['ssh-config', '*.corp.test', '--pomerium-url', world!.proxy.url]);
    assert.equal(result.code, 0, result.stderr);
    const script = join(realpathSync(prefix), 'lib', 'node_modules', 'burrow-tunnel', 'bin', 'burrow.js');
    const proxyCommand = result.stdout.split('\n').find((l) => l.trim().startsWith('ProxyCommand '));
    assert.ok(proxyCommand, result.stdout);
    assert.equal(proxyCommand.trim().split(' ').slice(1, 3).join(' '), `${process.execPath} ${script}`);
    assert.match(result.stdout, new RegExp(`^# burrow ${pkg.version.replace(/\./g, '\\.')}: `));
  });

  it('signs in through the browser (--browser-cmd), and through the default browser the `open` dependency finds', async () => {
    const cache = join(root, 'cache-sign-in');
    const log = join(cache, 'browser.log');
    mkdirSync(cache);
    const env = { XDG_CACHE_HOME: cache, ...browserEnv({ log }) };
    const first = await installed(world!.tcpArgs(DEST, '--browser-cmd', followBrowser, '--listen', '-'), env, 'signed in');
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, 'signed in');
    assert.match(first.stderr, /opened your browser to sign in/);
    assert.equal(browserLaunches(log).length, 1);
    const [token] = storedTokens(cache);
    assert.ok(token && world!.proxy.verifyToken(token), 'a valid token is cached');

    // No --browser-cmd: `open` (installed beside burrow, loaded on demand) runs xdg-open, which
    // finds the stand-in browser as x-www-browser on the PATH.
    const other = join(root, 'cache-open');
    const bin = join(other, 'bin');
    mkdirSync(bin, { recursive: true });
    symlinkSync(followBrowser, join(bin, 'x-www-browser'));
    const openLog = join(other, 'browser.log');
    const viaOpen = await run(burrow, world!.tcpArgs(DEST, '--listen', '-'), {
      env: { PATH: `${bin}:${PATH}`, HOME: home, NO_COLOR: '1', BURROW_CREDENTIAL_STORE: 'file', XDG_CACHE_HOME: other, DISPLAY: ':99', XDG_DATA_HOME: other, XDG_DATA_DIRS: other, ...browserEnv({ log: openLog }) },
      cwd: root,
      input: 'via open',
    });
    assert.equal(viaOpen.code, 0, viaOpen.stderr);
    assert.equal(viaOpen.stdout, 'via open');
    assert.equal(browserLaunches(openLog).length, 1);
  });
});
