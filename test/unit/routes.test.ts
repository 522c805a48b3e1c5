/** The routes API's answer as burrow reads it, and the table and JSON it prints (pure parts of net/routes-api.ts and cli/commands/routes.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cell, inertJson, reachCommand, routesTable } from '../../src/cli/commands/routes.js';
import { type PortalRoute, parseRoutes, typeOf } from '../../src/net/routes-api.js';
import { text } from '../../src/output/messages.js';
import { proxyEndpoint } from '../../src/target.js';

const PROXY = 'https://proxy.test:443';
const proxy = proxyEndpoint('https', 'proxy.test');

function routes(list: unknown[]): PortalRoute[] {
  const parsed = parseRoutes(JSON.stringify({ routes: list }), PROXY);
  assert.ok(Array.isArray(parsed), String(parsed));
  return parsed;
}

describe('the routes API answer', () => {
  it('reads every route, keeps the object as sent, and takes the type from `from` when the proxy gives none', () => {
    const [a, b, c] = routes([
      { id: '1', name: 'git', type: 'TCP', from: 'tcp+https://git.test:22', connect_command: 'x', extra: [1] },
      { from: 'udp+https://dns.test:53' },
      { from: 'https://app.test', type: 7 },
    ]);
    assert.equal(a!.type, 'tcp');
    assert.deepEqual(a!.raw, { id: '1', name: 'git', type: 'TCP', from: 'tcp+https://git.test:22', connect_command: 'x', extra: [1] });
    assert.equal(b!.type, 'udp');
    assert.equal(b!.name, '');
    assert.equal(c!.type, 'http');
    assert.equal(typeOf('gopher://x'), '');
  });

  it('says what is wrong with an answer that is not a route list', () => {
    assert.equal(parseRoutes('<html>', PROXY), text.routesNotJson(PROXY, '<html>'));
    assert.equal(parseRoutes('', PROXY), text.routesNotJson(PROXY, ''));
    assert.equal(parseRoutes('null', PROXY), text.routesBadShape(PROXY, text.routesNoList));
    assert.equal(parseRoutes('{"routes":"all"}', PROXY), text.routesBadShape(PROXY, text.routesNoList));
    assert.equal(parseRoutes('{"routes":[null]}', PROXY), text.routesBadShape(PROXY, text.routesNotObject(1)));
    assert.equal(parseRoutes('{"routes":[{"from":""}]}', PROXY), text.routesBadShape(PROXY, text.routesNoFrom(1)));
    assert.deepEqual(parseRoutes('{"routes":[]}', PROXY), []);
  });
});

describe("burrow's command for a route", () => {
  const one = (route: unknown, through = proxy) => reachCommand(routes([route])[0]!, through);
  it('tcp and udp: the host:port, with --pomerium-url unless the proxy is the host\'s own https on 443', () => {
    assert.equal(one({ type: 'tcp', from: 'tcp+https://git.test:22' }), 'burrow tcp git.test:22 --pomerium-url https://proxy.test');
    assert.equal(one({ type: 'tcp', from: 'tcp+https://Proxy.test:22' }), 'burrow tcp proxy.test:22');
    assert.equal(one({ type: 'tcp', from: 'tcp+https://git.test:22' }, proxyEndpoint('https', 'git.test', 8443)), 'burrow tcp git.test:22 --pomerium-url https://git.test:8443');
    assert.equal(one({ type: 'tcp', from: 'tcp+http://proxy.test:22' }, proxyEndpoint('http', 'proxy.test')), 'burrow tcp proxy.test:22 --pomerium-url http://proxy.test');
    assert.equal(one({ type: 'udp', from: 'udp+https://dns.test:53' }), 'burrow udp dns.test:53 --pomerium-url https://proxy.test');
  });
  it('http: the URL; anything burrow cannot parse or reach: none', () => {
    assert.equal(one({ type: 'http', from: 'https://app.test/x' }), 'https://app.test/x');
    assert.equal(one({ type: 'tcp', from: 'tcp+https://a\u001b[31m.test:22' }), undefined);
    assert.equal(one({ type: 'tcp', from: 'udp+https://dns.test:53' }), undefined);
    assert.equal(one({ type: 'tcp', from: 'tcp+https://git.test:22; rm -rf ~' }), undefined);
    assert.equal(one({ type: 'http', from: 'javascript:alert(1)' }), undefined);
    assert.equal(one({ type: 'ssh', from: 'ssh://git.test' }), undefined);
  });
});

describe('what reaches the terminal', () => {
  it('cells escape controls, bidi and invisible characters, and are cut to their width', () => {
    assert.equal(cell('a\u001b[31mb\nc\u009b\u202e\u200b', 80), 'a\\u001b[31mb\\nc\\u009b\\u202e\\u200b');
    assert.equal(cell('x'.repeat(10), 5), 'xxxx…');
    assert.equal(cell('été 🚀', 10), 'été 🚀');
  });
  it('the table has one line per route and none of the proxy\'s command', () => {
    const table = routesTable(routes([{ name: 'n\nm', type: 'tcp', from: 'tcp+https://git.test:22', connect_command: 'evil' }]), proxy);
    assert.deepEqual(table.split('\n'), [
      'NAME  TYPE  FROM                     COMMAND',
      'n\\nm  tcp   tcp+https://git.test:22  burrow tcp git.test:22 --pomerium-url https://proxy.test',
      '',
    ]);
  });
  it('JSON keeps its values and writes what a terminal acts on as \\u escapes', () => {
    const value = [{ name: 'a\u001b\u009b\u2028\u202e\u007fz' }];
    const json = inertJson(value);
    assert.doesNotMatch(json, /[\u0000-\u001f\u007f-\u009f\u2028-\u202e]/);
    assert.deepEqual(JSON.parse(json), value);
  });
});
