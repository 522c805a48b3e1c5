/**
 * `burrow up`'s pure parts: what a reload does with each tunnel (planTunnels), and the service
 * files it prints (systemd's quoting, launchd's XML), checked by systemd's own verifier in
 * test/e2e/up.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { planTunnels } from '../../src/cli/commands/up.js';
import { serviceDefinition } from '../../src/cli/service.js';

describe('burrow up: reload plan', () => {
  it('stops the gone, starts the new, restarts the changed, leaves the same alone', () => {
    const running = new Map([
      ['a', 'A1'],
      ['b', 'B1'],
      ['c', 'C1'],
    ]);
    const wanted = new Map([
      ['c', 'C2'],
      ['a', 'A1'],
      ['d', 'D1'],
    ]);
    assert.deepEqual(planTunnels(running, wanted), { stop: ['b'], start: ['d'], restart: ['c'], unchanged: ['a'] });
  });

  it('nothing running starts everything; nothing wanted stops everything', () => {
    const some = new Map([
      ['x', '1'],
      ['y', '2'],
    ]);
    assert.deepEqual(planTunnels(new Map(), some), { stop: [], start: ['x', 'y'], restart: [], unchanged: [] });
    assert.deepEqual(planTunnels(some, new Map()), { stop: ['x', 'y'], start: [], restart: [], unchanged: [] });
  });
});

describe('burrow up: service files', () => {
  it('systemd: the command by absolute paths, quoted where it must be, % and $ doubled; reload is SIGHUP', () => {
    const unit = serviceDefinition('systemd', ['/usr/bin/node', '/opt/my tools/burrow.cjs'], ['git', 'a%b'], { config: '/home/a/my $cfg.yaml' });
    assert.match(unit, /^ExecStart=\/usr\/bin\/node "\/opt\/my tools\/burrow\.cjs" up git a%%b$/m);
    assert.match(unit, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    assert.match(unit, /^Environment="BURROW_CONFIG=\/home\/a\/my \$cfg\.yaml"$/m);
    assert.match(unit, /^Restart=on-failure$/m);
    assert.match(unit, /^WantedBy=default\.target$/m);
    assert.doesNotMatch(serviceDefinition('systemd', ['/usr/bin/burrow'], [], {}), /Environment=/);
  });

  it('launchd: a plist with the arguments as strings, XML escaped, kept alive on failure', () => {
    const plist = serviceDefinition('launchd', ['/usr/local/bin/burrow'], ['a&b'], { home: '/Users/a' });
    assert.match(plist, /<key>Label<\/key>\n {2}<string>burrow\.up<\/string>/);
    assert.match(plist, /<array>\n {4}<string>\/usr\/local\/bin\/burrow<\/string>\n {4}<string>up<\/string>\n {4}<string>a&amp;b<\/string>\n {2}<\/array>/);
    assert.match(plist, /<key>SuccessfulExit<\/key>\n {4}<false\/>/);
    assert.match(plist, /<string>\/Users\/a\/Library\/Logs\/burrow\.log<\/string>/);
    assert.doesNotMatch(plist, /--/, 'no "--" (it may not appear in an XML comment, and there is none)');
  });
});
