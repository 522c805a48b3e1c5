/** The loopback callback server: exactly one good request, everything else 404 and ignored. */
import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, it } from 'node:test';
import { startCallbackServer } from '../../src/auth/callback.js';

const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJleHAiOjF9.c2ln';

function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject).on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

describe('callback server', () => {
  it('listens on loopback with an unguessable path', async () => {
    const a = await startCallbackServer('https://p.test:443');
    const b = await startCallbackServer('https://p.test:443');
    try {
      const ua = new URL(a.url);
      assert.equal(ua.hostname, '127.0.0.1');
      assert.match(ua.pathname, /^\/burrow\/callback\/[A-Za-z0-9_-]{24}$/);
      assert.notEqual(ua.pathname, new URL(b.url).pathname);
    } finally {
      a.close();
      b.close();
    }
  });

  it('takes a token of ~27 KiB in the request line (Node answers 431 past 16 KiB by default)', async () => {
    const server = await startCallbackServer('https://p.test:443');
    try {
      const claims = Buffer.from(JSON.stringify({ exp: 1, groups: Array.from({ length: 750 }, (_, i) => `corp-team-${String(i).padStart(4, '0')}-engineers`) })).toString('base64url');
      const long = `eyJhbGciOiJFUzI1NiJ9.${claims}.c2ln`;
      assert.ok(long.length > 26 * 1024, `${long.length}`);
      // A browser's other headers on top (cookies other local apps set for 127.0.0.1).
      const ok = await get(`${server.url}?pomerium_jwt=${long}`, { Cookie: `other=${'x'.repeat(16 * 1024)}` });
      assert.equal(ok.status, 200);
      assert.equal(await server.token, long);
    } finally {
      server.close();
    }
  });

  it('ignores the wrong path, a missing token, other methods and a non-loopback Host; then takes one token and closes', async () => {
    const server = await startCallbackServer('https://p.test:443');
    const url = new URL(server.url);
    let settled = false;
    void server.token.then(() => (settled = true));
    try {
      assert.equal((await get(`${url.origin}/other?pomerium_jwt=${TOKEN}`)).status, 404);
      assert.equal((await get(`${url.origin}${url.pathname}x?pomerium_jwt=${TOKEN}`)).status, 404);
      assert.equal((await get(`${server.url}`)).status, 404, 'no token');
      assert.equal((await get(`${server.url}?pomerium_jwt=`)).status, 404, 'empty token');
      assert.equal((await get(`${server.url}?pomerium_jwt=<script>`)).status, 404, 'not a token');
      assert.equal((await get(`${server.url}?pomerium_jwt=${TOKEN}`, {}, 'POST')).status, 404, 'POST');
      assert.equal((await get(`${server.url}?pomerium_jwt=${TOKEN}`, { Host: 'evil.example:80' })).status, 404, 'DNS rebinding');
      assert.equal(settled, false, 'nothing accepted yet');

      const ok = await get(`${server.url}?state=keep&pomerium_jwt=${TOKEN}`, { Host: `localhost:${url.port}` });
      assert.equal(ok.status, 200);
      assert.match(ok.body, /signed in/i);
      assert.ok(!ok.body.includes(TOKEN), 'the page does not echo the token');
      assert.equal(await server.token, TOKEN);
      await assert.rejects(get(`${server.url}?pomerium_jwt=${TOKEN}`), /ECONNREFUSED|ECONNRESET|socket hang up/, 'closed after one');
    } finally {
      server.close();
    }
  });
});
