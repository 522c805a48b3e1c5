/**
 * What burrow and kubectl say to each other: KUBERNETES_EXEC_INFO read (and refused in one
 * line), the ExecCredential built, server URLs parsed, and the kubeconfig printed (as YAML
 * whose every string is a JSON string, checked by reading it back).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BurrowError, ExitCode } from '../../src/errors.js';
import { execCredential, EXEC_API_VERSIONS, kubeconfigYaml, parseExecInfo, parseKubeName, parseServerUrl } from '../../src/cli/kubernetes.js';
import { text } from '../../src/output/messages.js';

function refusal(run: () => unknown): BurrowError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof BurrowError, String(error));
    return error;
  }
  assert.fail('expected a BurrowError');
}

describe('KUBERNETES_EXEC_INFO', () => {
  it('gives the apiVersion asked for and spec.interactive; absent, v1 with interactivity unknown', () => {
    assert.deepEqual(parseExecInfo(undefined), { apiVersion: 'client.authentication.k8s.io/v1', interactive: undefined });
    assert.deepEqual(parseExecInfo(''), { apiVersion: 'client.authentication.k8s.io/v1', interactive: undefined });
    for (const apiVersion of EXEC_API_VERSIONS) {
      for (const interactive of [true, false]) {
        assert.deepEqual(parseExecInfo(JSON.stringify({ kind: 'ExecCredential', apiVersion, spec: { interactive } })), { apiVersion, interactive });
      }
    }
    // The cluster (provideClusterInfo: true) and fields of later versions are no trouble.
    const info = { kind: 'ExecCredential', apiVersion: 'client.authentication.k8s.io/v1', spec: { interactive: true, cluster: { server: 'https://k', config: null } }, extra: 1 };
    assert.deepEqual(parseExecInfo(JSON.stringify(info)), { apiVersion: 'client.authentication.k8s.io/v1', interactive: true });
    assert.equal(parseExecInfo(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1beta1' })).interactive, undefined);
    assert.equal(parseExecInfo(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', spec: { interactive: 'yes' } })).interactive, undefined);
  });

  it('bad JSON, a non-object or an unknown apiVersion: one line, BURROW_EXEC_INFO, exit 2', () => {
    const cases: Array<[string, string]> = [
      ['{"apiVersion": ', text.execInfoNotJson],
      ['not json', text.execInfoNotJson],
      ['[]', text.execInfoNotObject],
      ['null', text.execInfoNotObject],
      ['"client.authentication.k8s.io/v1"', text.execInfoNotObject],
      [JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1alpha1' }), text.execInfoApiVersion('client.authentication.k8s.io/v1alpha1')],
      [JSON.stringify({ kind: 'ExecCredential' }), text.execInfoApiVersion('undefined')],
      [JSON.stringify({ apiVersion: 1 }), text.execInfoApiVersion('1')],
      [JSON.stringify({ apiVersion: 'x\ny' }), text.execInfoApiVersion('x\ny')],
    ];
    for (const [raw, message] of cases) {
      const error = refusal(() => parseExecInfo(raw));
      assert.equal(error.code, 'BURROW_EXEC_INFO', raw);
      assert.equal(error.exitCode, ExitCode.usage);
      assert.equal(error.message, message, raw);
      assert.ok(error.hint, raw);
      assert.ok(!/[\r\n]/.test(error.message.replace(JSON.stringify('x\ny'), '')), 'one line (quoted input stays quoted)');
    }
  });
});

describe('ExecCredential', () => {
  const decode = (line: string) => {
    assert.ok(line.endsWith('\n') && !line.slice(0, -1).includes('\n'), 'one line');
    return JSON.parse(line) as { apiVersion: string; kind: string; status: Record<string, unknown> };
  };

  it('carries Pomerium-<jwt> and the apiVersion asked for; expirationTimestamp is RFC 3339 in whole seconds', () => {
    const at = Date.UTC(2030, 0, 2, 3, 4, 5) / 1000;
    assert.deepEqual(decode(execCredential('client.authentication.k8s.io/v1beta1', 'a.b.c', at + 0.75)), {
      apiVersion: 'client.authentication.k8s.io/v1beta1',
      kind: 'ExecCredential',
      status: { token: 'Pomerium-a.b.c', expirationTimestamp: '2030-01-02T03:04:05Z' },
    });
    assert.match(String(decode(execCredential('client.authentication.k8s.io/v1', 'a.b.c', at)).status.expirationTimestamp), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  it('has no expirationTimestamp when the token has no exp', () => {
    const credential = decode(execCredential('client.authentication.k8s.io/v1', 'a.b.c', undefined));
    assert.deepEqual(credential.status, { token: 'Pomerium-a.b.c' });
    assert.equal('expirationTimestamp' in credential.status, false);
  });
});

describe('server URLs and names', () => {
  it('keeps the path, takes the origin as the proxy and host[:port] as the name', () => {
    assert.deepEqual(parseServerUrl(' https://k8s.corp.example.com/ '), {
      server: 'https://k8s.corp.example.com',
      proxy: { scheme: 'https', host: 'k8s.corp.example.com', port: 443, origin: 'https://k8s.corp.example.com:443' },
      name: 'k8s.corp.example.com',
    });
    const prefixed = parseServerUrl('https://rancher.corp:8443/k8s/clusters/c-1/');
    assert.equal(prefixed.server, 'https://rancher.corp:8443/k8s/clusters/c-1');
    assert.equal(prefixed.proxy.origin, 'https://rancher.corp:8443');
    assert.equal(prefixed.name, 'rancher.corp:8443');
    assert.equal(parseServerUrl('https://[::1]:6443').proxy.origin, 'https://[::1]:6443');
  });

  it('refuses what kubectl could not use, in one line with the form to use', () => {
    for (const input of ['', 'k8s.corp.example.com', 'ftp://k8s', 'https://', 'https://u:p@k8s', 'https://k8s/?a=1', 'https://k8s/#x', 'https://k8s:0']) {
      const error = refusal(() => parseServerUrl(input));
      assert.equal(error.code, 'BURROW_INVALID_URL', input);
      assert.equal(error.exitCode, ExitCode.usage);
      assert.ok(error.message.startsWith(`invalid server URL ${JSON.stringify(input)}`), error.message);
    }
  });

  it('--name: any one line of printable characters', () => {
    assert.equal(parseKubeName(' corp prod '), 'corp prod');
    assert.equal(parseKubeName('a"b\\c: #d'), 'a"b\\c: #d');
    for (const bad of ['', ' ', 'a\nb', 'a\u0007', 'x'.repeat(254)]) assert.equal(refusal(() => parseKubeName(bad)).code, 'BURROW_USAGE');
  });
});

describe('kubeconfig', () => {
  it('a whole Config: cluster, exec user, context; every string JSON-quoted whatever it holds', () => {
    const awkward = 'a: "b" #c\n- d';
    const yaml = kubeconfigYaml({
      server: 'https://k8s.corp:8443/k8s',
      name: awkward,
      command: ['/usr/bin/node', '/opt/burrow it/bin/burrow.js'],
      args: ['--alternate-ca-path', '/etc/ca: "x".pem'],
      comment: ['first', 'second'],
      cluster: { certificateAuthority: '/etc/ca: "x".pem', proxyUrl: 'http://squid:3128' },
      user: { clientCertificate: '/c.pem', clientKey: '/k.pem' },
    });
    const name = JSON.stringify(awkward);
    assert.equal(
      yaml,
      [
        '# first',
        '# second',
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        `- name: ${name}`,
        '  cluster:',
        '    server: "https://k8s.corp:8443/k8s"',
        '    certificate-authority: "/etc/ca: \\"x\\".pem"',
        '    proxy-url: "http://squid:3128"',
        'users:',
        `- name: ${name}`,
        '  user:',
        '    client-certificate: "/c.pem"',
        '    client-key: "/k.pem"',
        '    exec:',
        '      apiVersion: "client.authentication.k8s.io/v1"',
        '      command: "/usr/bin/node"',
        '      args:',
        '      - "/opt/burrow it/bin/burrow.js"',
        '      - "k8s"',
        '      - "exec-credential"',
        '      - "https://k8s.corp:8443/k8s"',
        '      - "--alternate-ca-path"',
        '      - "/etc/ca: \\"x\\".pem"',
        '      interactiveMode: "IfAvailable"',
        '      provideClusterInfo: false',
        'contexts:',
        `- name: ${name}`,
        '  context:',
        `    cluster: ${name}`,
        `    user: ${name}`,
        `current-context: ${name}`,
        '',
      ].join('\n'),
    );
    assert.ok(!yaml.includes('a: "b" #c\n'), 'the line break in the name stays escaped');
  });

  it('writes only the TLS settings given', () => {
    const yaml = kubeconfigYaml({ server: 'https://k', name: 'k', command: ['/bin/burrow'], args: [], comment: [], cluster: { insecureSkipTlsVerify: true, certificateAuthorityData: 'QUJD' } });
    assert.match(yaml, /^ {4}certificate-authority-data: "QUJD"\n {4}insecure-skip-tls-verify: true$/m);
    assert.doesNotMatch(yaml, /certificate-authority:|client-|proxy-url/);
    assert.match(yaml, /command: "\/bin\/burrow"\n {6}args:\n {6}- "k8s"\n {6}- "exec-credential"\n {6}- "https:\/\/k"\n/);
  });
});
