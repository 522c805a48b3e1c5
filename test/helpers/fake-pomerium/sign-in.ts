/**
 * The sign-in endpoints (docs/protocol.md, "Sign-in"): the login API that hands out the sign-in
 * address, the sign-in page with its form, and what the identity provider and Pomerium's
 * callback do together once it is submitted: a token, and a redirect back to the client; and the
 * sign-out page.
 */
import type { IncomingMessage } from 'node:http';
import type { ProxyContext } from './context.js';

/** Answers a plain HTTP request: status, body, extra headers. */
export type Send = (status: number, body: string, headers?: Record<string, string>) => void;

/** The sign-in page of the proxy at `proxyUrl` that comes back to `redirect`. */
export function signInUrl(proxyUrl: string, redirect: string): string {
  return `${proxyUrl}/.pomerium/sign_in?pomerium_redirect_uri=${encodeURIComponent(redirect)}`;
}

/**
 * Serves `endpoint` (`METHOD /path`) if it is one of the sign-in endpoints; false when it is
 * not (nothing sent then).
 */
export function serveSignIn(ctx: ProxyContext, endpoint: string, query: URLSearchParams, req: IncomingMessage, send: Send): boolean {
  switch (endpoint) {
    case 'GET /.pomerium/api/v1/login': {
      ctx.stats.loginRequests++;
      const redirect = query.get('pomerium_redirect_uri');
      if (!isHttpUrl(redirect)) send(400, 'pomerium_redirect_uri must be an http(s) URL\n');
      else send(200, ctx.signInUrl(redirect));
      return true;
    }
    case 'GET /.pomerium/sign_in': {
      const redirect = query.get('pomerium_redirect_uri');
      if (!isHttpUrl(redirect)) send(400, 'pomerium_redirect_uri must be an http(s) URL\n');
      else if (query.get('submit') === '1') completeSignIn(ctx, redirect, query.get('email'), send);
      else send(200, signInPage(redirect, ctx.settings.signInEmail), { 'Content-Type': 'text/html; charset=utf-8' });
      return true;
    }
    case 'POST /.pomerium/sign_in': {
      readBody(req, 64 * 1024)
        .then((body) => {
          const form = new URLSearchParams(body);
          const redirect = form.get('pomerium_redirect_uri');
          if (!isHttpUrl(redirect)) return send(400, 'pomerium_redirect_uri must be an http(s) URL\n');
          completeSignIn(ctx, redirect, form.get('email'), send);
        })
        .catch(() => req.socket.destroy());
      return true;
    }
    case 'GET /.pomerium/sign_out': {
      // Where a real Pomerium ends its own browser session (a cookie, apart from any token a
      // client holds). This proxy keeps no browser session: it counts the visit and says so.
      ctx.stats.signOuts++;
      send(200, '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Signed out</title></head><body><h1>Signed out</h1></body></html>\n', {
        'Content-Type': 'text/html; charset=utf-8',
      });
      return true;
    }
    default:
      return false;
  }
}

/**
 * What the identity provider and Pomerium's callback do together: issue a token and send the
 * browser back to the client's loopback URL with `pomerium_jwt` added to its query.
 */
function completeSignIn(ctx: ProxyContext, redirect: string, email: string | null, send: Send): void {
  const jwt = ctx.tokens.mintToken({
    email: email || ctx.settings.signInEmail,
    ttlSeconds: ctx.settings.tokenTtlSeconds,
    noExpiry: ctx.settings.noExpiry,
    extraClaims: ctx.settings.tokenClaims,
  });
  ctx.stats.signIns++;
  const back = new URL(redirect);
  // Appended by hand: rebuilding through URLSearchParams would re-encode the client's own
  // parameters, and docs/protocol.md ("Sign-in") promises they come back as they were.
  back.search = `${back.search ? `${back.search}&` : '?'}pomerium_jwt=${jwt}`;
  send(302, 'signed in\n', { Location: back.href });
}

function isHttpUrl(value: string | null): value is string {
  if (!value) return false;
  try {
    const { protocol } = new URL(value);
    return protocol === 'http:' || protocol === 'https:';
  } catch {
    return false;
  }
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) return reject(new Error('request body too large'));
      chunks.push(chunk);
    });
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function signInPage(redirect: string, email: string): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Sign in</title></head>
<body>
<h1>Sign in</h1>
<form method="POST" action="/.pomerium/sign_in">
<input type="hidden" name="pomerium_redirect_uri" value="${escapeHtml(redirect)}">
<label>Email <input type="email" name="email" id="email" value="${escapeHtml(email)}"></label>
<button type="submit" id="sign-in">Sign in</button>
</form>
</body>
</html>
`;
}
