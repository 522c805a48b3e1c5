/**
 * Fuzzing what comes from the network: requests to the real loopback sign-in callback server,
 * and a real TLS proxy on loopback answering CONNECT (and WebSocket upgrades) with generated
 * bytes, to the real transports in-process and to a few spawned burrow processes.
 *
 * Every case must end, within a bound, in success or a BurrowError with a stable code; nothing
 * may escape to the process (a tripwire on 'uncaughtException'/'unhandledRejection' fails the
 * test). Seeded and bounded: see test/helpers/fuzz.ts.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net, { type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { startCallbackServer } from '../../src/auth/callback.js';
import { JWT_SHAPE } from '../../src/auth/jwt.js';
import { parseTarget } from '../../src/cli/destination.js';
import type { Target } from '../../src/target.js';
import { BurrowError, type ErrorCode, ExitCode } from '../../src/errors.js';
import { buildTls } from '../../src/net/tls.js';
import { ConnectTransport } from '../../src/tunnel/connect.js';
import { WebSocketTransport } from '../../src/tunnel/websocket.js';
import type { Transport } from '../../src/tunnel/transport.js';
import { oneLineFailure } from '../helpers/assertions.js';
import { runBurrow, stopAll } from '../helpers/burrow.js';
import { fixture, readFixture } from '../helpers/fixtures.js';
import { ALNUM, FOREIGN_GREETINGS, fuzz, mayBeginStatusLine, mutate, type Rng, randomString, summary, tripwire, within } from '../helpers/fuzz.js';

const wire = tripwire();
after(async () => {
  wire.remove();
  await stopAll();
  wire.check('after the network fuzz targets');
});

const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDAsImVtYWlsIjoiYWxpY2VAY29ycC50ZXN0In0.c2ln';

/** Sends raw bytes on a fresh connection and collects the answer until the server closes (bounded). */
function rawExchange(port: number, chunks: Buffer[], endAfter: boolean, ms = 4000): Promise<{ answer: Buffer; refused: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const received: Buffer[] = [];
    // A request left incomplete waits for the server's header timeout (10 s) unless the client
    // goes away: after a second of silence, leave, and then the server must close.
    let timer = setTimeout(() => {
      if (endAfter) return giveUp();
      socket.end();
      timer = setTimeout(giveUp, ms);
    }, endAfter ? ms : 1000);
    const giveUp = () => {
      socket.destroy();
      reject(new Error(`the server neither answered nor closed within ${ms} ms`));
    };
    socket.on('connect', () => {
      for (const chunk of chunks) socket.write(chunk);
      if (endAfter) socket.end();
    });
    socket.on('data', (d: Buffer) => received.push(d));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ answer: Buffer.concat(received), refused: error.code === 'ECONNREFUSED' });
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ answer: Buffer.concat(received), refused: false });
    });
  });
}

// --- the sign-in callback server ----------------------------------------------------------------------

interface RequestPlan {
  kind: string;
  /** The request text; {PATH}, {DECOY}, {PORT} and {TOKEN} are filled in against the live server. */
  parts: string[];
  /** Extra bytes (binary junk) instead of text. */
  binary?: Buffer;
  endAfter: boolean;
}

const ALLOWED_HOSTS = ['127.0.0.1:{PORT}', 'localhost:{PORT}', '[::1]:{PORT}'];

function head(method: string, target: string, headers: string[], body = ''): string {
  return `${method} ${target} HTTP/1.1\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n${body}`;
}

/** A request that must never be accepted: near-valid (one thing wrong) or junk. */
function hostileRequest(rng: Rng): RequestPlan {
  const host = `Host: ${rng.pick(ALLOWED_HOSTS)}`;
  const good = '{PATH}?pomerium_jwt={TOKEN}';
  return rng.weighted<() => RequestPlan>([
    [2, () => ({ kind: 'method', parts: [head(rng.pick(['POST', 'PUT', 'HEAD', 'OPTIONS', 'DELETE', 'PATCH', 'get', 'GETT', randomString(rng, 8, ALNUM)]), good, [host])], endAfter: rng.chance(0.5) })],
    [2, () => ({ kind: 'path', parts: [head('GET', `{MUTPATH}?pomerium_jwt={TOKEN}`, [host])], endAfter: rng.chance(0.5) })],
    [2, () => ({ kind: 'host', parts: [head('GET', good, rng.chance(0.2) ? [] : [`Host: ${mutate(rng, rng.pick(ALLOWED_HOSTS))}`])], endAfter: rng.chance(0.5) })],
    [1, () => ({ kind: 'host', parts: [head('GET', good, [`Host: ${rng.pick(['evil.example', 'evil.example:{PORT}', '127.0.0.2:{PORT}', '0.0.0.0:{PORT}', 'localhost.:{PORT}', '127.0.0.1'])}`])], endAfter: true })],
    [2, () => ({ kind: 'token', parts: [head('GET', `{PATH}?${rng.pick(['pomerium_jwt={MUTTOKEN}', 'pomerium_jwt=', 'POMERIUM_JWT={TOKEN}', 'jwt={TOKEN}', 'pomerium_jwt={TOKEN}%0A', ''])}`, [host])], endAfter: true })],
    // Near-valid in every other way, but for a path this server never handed out.
    [3, () => ({ kind: 'decoy', parts: [mutate(rng, head('GET', '{DECOY}?pomerium_jwt={TOKEN}', [host, 'User-Agent: fuzz', 'Accept: */*']))], endAfter: rng.chance(0.7) })],
    [1, () => ({ kind: 'absolute-form', parts: [head('GET', rng.pick(['http://[', 'http://[::1', 'http://%zz/', '//evil/{PATH}', '*', 'http:/{PATH}', 'HTTP://127.0.0.1:{PORT}{DECOY}', 'file:///etc/passwd']), [host])], endAfter: true })],
    // Beyond the callback's request-head limit (256 KiB, room for the longest tokens): refused.
    [1, () => ({ kind: 'huge header', parts: [head('GET', good, [`X-Big: ${'a'.repeat(rng.pick([300_000, 600_000]))}`, host])], endAfter: true })],
    [1, () => ({ kind: 'huge target', parts: [head('GET', `{DECOY}?${'q'.repeat(rng.pick([9000, 100_000]))}`, [host])], endAfter: true })],
    [1, () => ({ kind: 'many headers', parts: [head('GET', '{DECOY}', [host, ...Array.from({ length: rng.pick([100, 2100]) }, (_, i) => `X-${i}: ${i}`)])], endAfter: true })],
    [1, () => ({ kind: 'body', parts: [head('GET', '{DECOY}', [host, rng.pick(['Content-Length: 5', 'Content-Length: -1', 'Transfer-Encoding: chunked', 'Content-Length: 99999999999999999999']), rng.pick(['Content-Length: 3', 'X: y'])], rng.pick(['hello', 'zz\r\n', '0\r\n\r\n', '']))], endAfter: true })],
    [1, () => ({ kind: 'truncated', parts: [head('GET', good, [host]).slice(0, rng.range(1, 60))], endAfter: true })],
    [1, () => ({ kind: 'pipelined', parts: [head('GET', '{DECOY}', [host]), head('POST', good, [host]), head('GET', '{MUTPATH}', [host])], endAfter: rng.chance(0.5) })],
    // (Node's parser takes HTTP/2.0 and 1.2 request lines as they are: only the path makes these wrong.)
    [1, () => ({ kind: 'version', parts: [`GET {DECOY}?pomerium_jwt={TOKEN} ${rng.pick(['HTTP/1.2', 'HTTP/2.0', 'HTTP/0.9', 'HTTPS/1.1', 'http/1.1', ''])}\r\n${host}\r\n\r\n`], endAfter: true })],
    [2, () => ({ kind: 'junk', parts: [], binary: rng.bytes(rng.range(1, 3000)), endAfter: rng.chance(0.8) })],
    [1, () => ({ kind: 'junk text', parts: [randomString(rng, 300)], endAfter: true })],
  ])();
}

/** A request that must be accepted: the one good callback, in forms a browser may send. */
function validRequest(rng: Rng): RequestPlan {
  const query = rng.pick(['pomerium_jwt={TOKEN}', 'state=keep&pomerium_jwt={TOKEN}', 'pomerium_jwt={TOKEN}&x=%00%ff', 'a=1&pomerium_jwt={TOKEN}&pomerium_jwt=other']);
  const target = rng.chance(0.15) ? `http://127.0.0.1:{PORT}{PATH}?${query}` : `{PATH}?${query}`;
  const headers = [`Host: ${rng.pick(ALLOWED_HOSTS)}`];
  if (rng.chance(0.5)) headers.push(`User-Agent: ${randomString(rng, 60, `${ALNUM} /.;()`)}`);
  if (rng.chance(0.3)) headers.push('Connection: keep-alive', 'Accept-Encoding: gzip, br');
  const text = head('GET', target, headers);
  // Sometimes junk follows the good request on the same connection (it must change nothing).
  return { kind: 'valid', parts: rng.chance(0.2) ? [text, `${randomString(rng, 200)}\r\n\r\n`] : [text], endAfter: false };
}

interface CallbackRound {
  hostile: RequestPlan[];
  valid: RequestPlan;
  mutPath: (path: string) => string;
  mutToken: string;
}

function callbackRound(rng: Rng): CallbackRound {
  const mutRng = rng.fork();
  return {
    hostile: Array.from({ length: rng.range(2, 10) }, () => hostileRequest(rng)),
    valid: validRequest(rng),
    mutPath: (path) => mutate(mutRng, path),
    mutToken: mutate(rng, TOKEN),
  };
}

function fill(text: string, values: Record<string, string>): string {
  return text.replace(/\{(PATH|DECOY|PORT|TOKEN|MUTPATH|MUTTOKEN)\}/g, (_, key: string) => values[key]!);
}

describe('fuzz: the sign-in callback server', () => {
  it('answers or closes every hostile request, never crashes, and accepts only the one good callback', async (t) => {
    const report = await fuzz('callback', { runs: 200, budgetMs: 8000 }, callbackRound, async (round) => {
      const server = await startCallbackServer('https://p.test:443');
      try {
        const url = new URL(server.url);
        const port = Number(url.port);
        const secret = url.pathname.slice(url.pathname.lastIndexOf('/') + 1);
        let accepted: string | undefined;
        void server.token.then((token) => (accepted = token));
        const mutPath = round.mutPath(url.pathname);
        const values = {
          PATH: url.pathname,
          DECOY: `/burrow/callback/${randomBytes(18).toString('base64url')}`,
          PORT: String(port),
          TOKEN,
          // A mutated path that still holds the secret could be the good path in disguise (./).
          MUTPATH: mutPath.includes(secret) ? '/burrow/callback/' : mutPath,
          MUTTOKEN: JWT_SHAPE.test(round.mutToken) ? 'x' : new URLSearchParams({ t: round.mutToken }).toString().slice(2),
        };
        for (const request of round.hostile) {
          const host = /\r\nHost: ([^\r\n]*)\r\n/.exec(fill(request.parts[0] ?? '', values))?.[1]?.trim();
          const chunks = request.binary ? [request.binary] : request.parts.map((p) => Buffer.from(fill(p, values), 'utf8'));
          const { answer } = await within(rawExchange(port, chunks, request.endAfter), 6000, `hostile ${request.kind}`);
          wire.check(`hostile ${request.kind}`);
          const status = /^HTTP\/1\.1 (\d{3})/.exec(answer.toString('latin1'))?.[1];
          if (answer.length > 0) assert.ok(status, `an HTTP answer or nothing, got ${JSON.stringify(answer.subarray(0, 60).toString('latin1'))}`);
          // A host mutation that only changed letter case or spacing is still the loopback host.
          const stillValid = request.kind === 'host' && host !== undefined && ALLOWED_HOSTS.map((h) => fill(h, values)).includes(host);
          if (stillValid && status === '200') {
            assert.equal(await within(server.token, 2000, 'token'), TOKEN);
            return 'accepted (host spelled with extra spaces)';
          }
          assert.notEqual(status, '200', `${request.kind}: refused`);
          assert.equal(accepted, undefined, `${request.kind}: no token accepted`);
        }
        const chunks = round.valid.parts.map((p) => Buffer.from(fill(p, values), 'utf8'));
        const ok = await within(rawExchange(port, chunks, false), 6000, 'the good callback');
        wire.check('the good callback');
        const text = ok.answer.toString('utf8');
        // Junk pipelined after the good request is a parse error that may drop the page before it
        // is flushed; the sign-in itself must still complete.
        if (round.valid.parts.length === 1 || text !== '') {
          assert.match(text, /^HTTP\/1\.1 200 /, `the good callback ${JSON.stringify(round.valid.parts)} is answered 200: ${JSON.stringify(text.slice(0, 80))}; before it: ${round.hostile.map((h) => h.kind).join(", ")}`);
        }
        assert.ok(!text.includes(TOKEN), 'the page does not echo the token');
        assert.equal(await within(server.token, 2000, 'token'), TOKEN);
        // Closed after the one: the next connection is refused.
        const next = await within(rawExchange(port, [Buffer.from(fill(round.valid.parts[0]!, values))], true), 6000, 'after close');
        assert.ok(next.refused || next.answer.length === 0, 'nothing answers after the good callback');
        return 'accepted once';
      } finally {
        server.close();
      }
    });
    t.diagnostic(summary('callback', report));
  });

  it('regressions found by fuzzing', async () => {
    // An absolute-form request target that WHATWG URL rejects ("http://[") threw inside the
    // request handler: an uncaught exception that ended the sign-in with a stack trace.
    const server = await startCallbackServer('https://p.test:443');
    try {
      const port = Number(new URL(server.url).port);
      const { answer } = await within(rawExchange(port, [Buffer.from(`GET http://[ HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`)], true), 6000, 'http://[');
      await new Promise((resolve) => setImmediate(resolve));
      wire.check('GET http://[');
      assert.match(answer.toString('latin1'), /^HTTP\/1\.1 (400|404) /);
    } finally {
      server.close();
    }
  });
});

// --- proxy answers ----------------------------------------------------------------------------------

/** What the fuzz proxy does with one tunnel request. */
interface AnswerPlan {
  kind: string;
  /** The bytes to send, given the request head (WebSocket answers need its key). */
  bytes(requestHead: string): Buffer[];
  /** After writing: end (FIN), destroy (reset-like), or stall (keep the connection open, silent). */
  then: 'end' | 'destroy' | 'stall';
  /** For a well-formed answer: the status (the oracle) and the bytes after the head. */
  status?: number;
  /**
   * The head has odd framing headers (a bad Content-Length, Transfer-Encoding) or is larger than
   * an HTTP client parser takes (ws uses Node's, 16 KiB): a WebSocket client may reject it whole.
   */
  strictParserMayReject?: boolean;
  after?: Buffer;
  /** A WebSocket 101 with the right accept key. */
  upgrade?: boolean;
  /** Pause between the pieces of `bytes` (each then its own TLS record and TCP segment). */
  gapMs?: number;
  /** What the proxy sent, set as it sends. */
  sent?: Buffer;
}

const STATUSES = [200, 201, 204, 299, 301, 302, 303, 307, 308, 400, 401, 403, 404, 405, 407, 418, 429, 500, 501, 502, 503, 504, 505, 599];
const REASONS = ['OK', 'Connection established', '', 'Not Found', 'x'.repeat(300), '\u00e9\u00ff', 'A\tB'];

function headerBlock(rng: Rng): string[] {
  return Array.from({ length: rng.range(0, 8) }, () =>
    rng.weighted<() => string>([
      [4, () => `${rng.pick(['Content-Type', 'Server', 'Location', 'X-Pomerium-Intercepted-Response', 'Set-Cookie', 'Via', 'Connection'])}: ${randomString(rng, 40, `${ALNUM} /:;=.-`)}`],
      [1, () => `Content-Length: ${rng.pick(['0', '5', '-1', '99999999999999999999', 'abc'])}`],
      [1, () => `Transfer-Encoding: ${rng.pick(['chunked', 'gzip, chunked', 'identity'])}`],
      [1, () => `X-Long: ${'v'.repeat(rng.pick([1000, 8000]))}`],
      [1, () => `X${randomString(rng, 10, ALNUM)}:${randomString(rng, 20, `${ALNUM} `)}`],
    ])(),
  );
}

function wsAccept(requestHead: string): string {
  const key = /sec-websocket-key:\s*(\S+)/i.exec(requestHead)?.[1] ?? '';
  return createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
}

function wsFrames(rng: Rng): Buffer {
  return rng.weighted<() => Buffer>([
    [2, () => Buffer.concat([Buffer.from([0x82, 5]), Buffer.from('hello')])],
    [1, () => Buffer.from([0x88, 2, 0x03, 0xe8])],
    [1, () => Buffer.from([0x82, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])],
    [1, () => Buffer.from([0x8f, 0x00])],
    [1, () => Buffer.from([0x02, 3, 1, 2, 3, 0x81, 1, 0xff])],
    [2, () => rng.bytes(rng.range(1, 300))],
  ])();
}

function answerPlan(rng: Rng, websocket: boolean): AnswerPlan {
  const then = rng.weighted<AnswerPlan['then']>([
    [12, 'end'],
    [3, 'destroy'],
    [1, 'stall'],
  ]);
  const wellFormed = (): AnswerPlan => {
    const status = rng.pick(STATUSES);
    const headers = headerBlock(rng);
    const interim = rng.chance(0.1) ? 'HTTP/1.1 100 Continue\r\n\r\n'.repeat(rng.range(1, 3)) : '';
    const text = `${interim}HTTP/1.${rng.pick([0, 1])} ${status} ${rng.pick(REASONS)}\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`;
    const after = rng.chance(0.5) ? Buffer.alloc(0) : rng.chance(0.5) ? rng.bytes(rng.range(1, 5000)) : Buffer.from(randomString(rng, 200));
    // Sometimes the head arrives in pieces.
    const split = rng.chance(0.3) ? rng.int(text.length) : text.length;
    return {
      kind: `status ${status}`,
      strictParserMayReject: text.length > 8000 || headers.some((h) => /^(content-length|transfer-encoding):/i.test(h)),
      bytes: () => [Buffer.from(text.slice(0, split), 'latin1'), Buffer.concat([Buffer.from(text.slice(split), 'latin1'), after])].filter((b) => b.length > 0),
      then,
      status,
      after,
    };
  };
  const kinds: Array<readonly [number, () => AnswerPlan]> = [
    [6, wellFormed],
    [4, () => {
      const plan = wellFormed();
      const text = plan.bytes('').map((b) => b.toString('latin1')).join('');
      const mutated = mutate(rng, text);
      return { kind: 'mutated', bytes: () => [Buffer.from(mutated, 'latin1')], then };
    }],
    [1, () => {
      const plan = wellFormed();
      const text = Buffer.concat(plan.bytes(''));
      return { kind: 'truncated', bytes: () => [text.subarray(0, rng.int(text.length))], then: rng.chance(0.5) ? 'end' : 'destroy' };
    }],
    [2, () => ({ kind: 'binary junk', bytes: () => [rng.bytes(rng.range(1, 4000))], then })],
    [1, () => ({ kind: 'huge status line', bytes: () => [Buffer.from(`HTTP/1.1 200 ${'x'.repeat(rng.pick([70_000, 150_000]))}\r\n\r\n`)], then })],
    [1, () => ({ kind: 'huge header block', bytes: () => [Buffer.from(`HTTP/1.1 200 OK\r\n${'X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n'.repeat(rng.pick([1200, 3000]))}\r\n`)], then })],
    [1, () => ({ kind: 'endless 1xx', bytes: () => [Buffer.from('HTTP/1.1 100 Continue\r\n\r\n'.repeat(rng.pick([50, 3000])))], then })],
    [1, () => ({ kind: 'not http', bytes: () => [Buffer.from(rng.pick(['SSH-2.0-OpenSSH_9.2\r\n', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', '\x16\x03\x01\x00', 'HTTP/1.1 200', '220 smtp ready\r\n', '']))], then })],
    [1, () => ({ kind: 'lf only', bytes: () => [Buffer.from(`HTTP/1.1 ${rng.pick(STATUSES)} OK\nServer: x\n\n`)], then })],
    // What other servers greet with, the connection then left open: refused at once, not at the deadline.
    [2, () => ({ kind: 'foreign greeting', bytes: () => [Buffer.from(rng.pick(FOREIGN_GREETINGS), 'latin1')], then: rng.chance(0.7) ? 'stall' : then })],
    // A good answer a few bytes at a time: every prefix must be taken for the start of a head.
    [2, () => {
      const plan = wellFormed();
      const whole = Buffer.concat(plan.bytes(''));
      // The head dribbles; what follows it goes in one piece with the last, before the client's
      // FIN (drain sends one at once) ends this server's side.
      const head = whole.subarray(0, whole.length - plan.after!.length);
      const size = Math.max(rng.range(1, 3), Math.ceil(head.length / 150));
      const pieces = Array.from({ length: Math.ceil(head.length / size) }, (_, i) => head.subarray(i * size, (i + 1) * size));
      if (pieces.length > 0) pieces[pieces.length - 1] = Buffer.concat([pieces[pieces.length - 1]!, plan.after!]);
      return { ...plan, kind: `dribbled ${plan.kind}`, bytes: () => pieces, then: 'end', gapMs: 1 };
    }],
  ];
  if (websocket) {
    kinds.push(
      [4, () => ({
        kind: '101 upgrade',
        bytes: (request) => [Buffer.from(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${wsAccept(request)}\r\n\r\n`), ...Array.from({ length: rng.range(0, 3) }, () => wsFrames(rng))],
        then: then === 'stall' ? 'end' : then,
        upgrade: true,
      })],
      [2, () => ({
        kind: 'bad 101',
        bytes: (request) => [Buffer.from(mutate(rng, `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${wsAccept(request)}\r\n\r\n`))],
        then,
      })],
    );
  }
  return rng.weighted(kinds)();
}

/** The TLS proxy on loopback: each request's answer is looked up by the case number it names. */
interface FuzzProxy {
  port: number;
  plans: Map<number, AnswerPlan>;
  close(): Promise<void>;
}

async function startFuzzProxy(): Promise<FuzzProxy> {
  const plans = new Map<number, AnswerPlan>();
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer({ cert: readFixture('proxy.pem'), key: readFixture('proxy-key.pem'), ALPNProtocols: ['http/1.1'] }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let received = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) {
        if (received.length > 64 * 1024) socket.destroy();
        return;
      }
      socket.off('data', onData);
      const requestHead = received.subarray(0, end).toString('latin1');
      const id = Number(/case-(\d+)/.exec(requestHead.split('\r\n')[0] ?? '')?.[1] ?? -1);
      const plan = plans.get(id);
      if (!plan) return socket.destroy();
      const pieces = plan.bytes(requestHead);
      plan.sent = Buffer.concat(pieces);
      const finish = () => {
        if (plan.then === 'end') socket.end();
        else if (plan.then === 'destroy') socket.destroy();
        // 'stall': leave it open and silent; the client's deadline must end it.
      };
      if (!plan.gapMs) {
        for (const bytes of pieces) socket.write(bytes);
        return finish();
      }
      let next = 0;
      const dribble = () => {
        if (socket.destroyed) return;
        if (next >= pieces.length) return finish();
        socket.write(pieces[next++]!);
        setTimeout(dribble, plan.gapMs);
      };
      dribble();
    };
    socket.on('data', onData);
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as AddressInfo).port,
    plans,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Codes a proxy's answer may produce: it was reached, so never "unreachable", TLS or internal. */
const ANSWER_CODES = new Set<ErrorCode>([
  'BURROW_PROXY_PROTOCOL',
  'BURROW_PROXY_STATUS',
  'BURROW_AUTH_REQUIRED',
  'BURROW_ACCESS_DENIED',
  'BURROW_ROUTE_NOT_FOUND',
  'BURROW_UPSTREAM_UNAVAILABLE',
]);

function expectedCode(status: number, websocket: boolean): ErrorCode | undefined {
  if (status >= 200 && status < 300) return websocket ? 'BURROW_PROXY_STATUS' : undefined;
  if ([301, 302, 303, 307, 308, 401].includes(status)) return 'BURROW_AUTH_REQUIRED';
  if (status === 403) return 'BURROW_ACCESS_DENIED';
  if (status === 404) return 'BURROW_ROUTE_NOT_FOUND';
  if ([502, 503, 504].includes(status)) return 'BURROW_UPSTREAM_UNAVAILABLE';
  return 'BURROW_PROXY_STATUS';
}

/** Reads a tunnel until it ends or fails (bounded), returning what arrived. */
function drain(stream: Duplex, ms: number): Promise<{ bytes: Buffer; error: Error | undefined }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const done = (error?: Error) => {
      clearTimeout(timer);
      stream.destroy();
      resolve({ bytes: Buffer.concat(chunks), error });
    };
    const timer = setTimeout(() => done(new Error('still open')), ms);
    stream.on('data', (d: Buffer) => chunks.push(d));
    stream.on('end', () => done());
    stream.on('close', () => done());
    stream.on('error', (error) => done(error));
    // The transport hands the socket over paused; a 'data' listener alone does not resume it.
    stream.resume();
    stream.end();
  });
}

describe('fuzz: proxy answers', () => {
  let proxy: FuzzProxy;
  const tlsSettings = buildTls({ alternateCaPath: fixture('ca.pem') }, {});
  const common = { tls: tlsSettings, userAgent: 'burrow/fuzz' };
  const transports = {
    connect: new ConnectTransport({ ...common, connectTimeoutMs: 3000 }),
    connectStall: new ConnectTransport({ ...common, connectTimeoutMs: 300 }),
    websocket: new WebSocketTransport({ ...common, connectTimeoutMs: 3000, headers: [], pingIntervalMs: 0 }),
    websocketStall: new WebSocketTransport({ ...common, connectTimeoutMs: 300, headers: [], pingIntervalMs: 0 }),
  };
  /** Error outcomes of CONNECT cases, replayed through spawned burrow. */
  const connectErrors = new Map<ErrorCode, { id: number; exitCode: number }>();
  let nextId = 0;

  before(async () => {
    proxy = await startFuzzProxy();
  });
  after(async () => {
    await proxy.close();
  });

  async function runCase(plan: AnswerPlan, websocket: boolean): Promise<string> {
    const id = nextId++;
    proxy.plans.set(id, plan);
    const target: Target = websocket
      ? parseTarget(`wss://localhost:${proxy.port}/case-${id}`)
      : parseTarget(`case-${id}.fuzz.test:22`, `https://localhost:${proxy.port}`);
    const transport: Transport = websocket
      ? plan.then === 'stall' ? transports.websocketStall : transports.websocket
      : plan.then === 'stall' ? transports.connectStall : transports.connect;
    let stream: Duplex | undefined;
    let failure: unknown;
    try {
      stream = (await within(transport.open({ target, token: rngToken(id) }), 6000, `${transport.name} open`)).stream;
    } catch (error) {
      failure = error;
    }
    await new Promise((resolve) => setImmediate(resolve));
    wire.check(`${transport.name} ${plan.kind}`);
    if (stream) {
      // A 2xx with junk after the head, or a 101 followed by junk frames: the tunnel is open and
      // whatever follows is the stream's business (for CONNECT, every byte must arrive).
      const { bytes } = await within(drain(stream, plan.then === 'stall' ? 300 : 3000), 5000, 'drain');
      await new Promise((resolve) => setImmediate(resolve));
      wire.check(`${transport.name} ${plan.kind} (stream)`);
      if (plan.status !== undefined) {
        assert.equal(expectedCode(plan.status, websocket), undefined, `status ${plan.status} must not open a tunnel`);
        if (!websocket && plan.then === 'end') assert.ok(bytes.equals(plan.after!), `every byte after the head arrives (${bytes.length} of ${plan.after!.length})`);
      }
      if (websocket) assert.ok(plan.upgrade || plan.kind === 'bad 101' || plan.kind === 'mutated', `${plan.kind} must not open a WebSocket`);
      return 'tunnel opened';
    }
    if (!(failure instanceof BurrowError)) throw new Error(`not a BurrowError: ${failure instanceof Error ? failure.stack : String(failure)}`);
    const code = failure.code;
    // Bytes that cannot begin a status line are refused as they arrive, whatever follows them.
    if (!websocket && plan.sent && plan.sent.length > 0 && !mayBeginStatusLine(plan.sent)) {
      assert.equal(code, 'BURROW_PROXY_PROTOCOL', `${plan.kind}: ${JSON.stringify(plan.sent.subarray(0, 30).toString('latin1'))} -> ${failure.message}`);
    }
    if (plan.then === 'stall' && code === 'BURROW_TIMEOUT') return 'timeout';
    assert.ok(ANSWER_CODES.has(code), `${plan.kind}: code ${code} (${failure.message})`);
    // Only a head that was sent whole (a destroy may discard what was written) has a known meaning.
    if (plan.status !== undefined && plan.then === 'end' && !(websocket && plan.strictParserMayReject)) {
      const expected = expectedCode(plan.status, websocket);
      assert.equal(code, expected ?? 'opened', `status ${plan.status} -> ${expected ?? 'a tunnel'} (${failure.message})`);
    }
    if (plan.upgrade && plan.then === 'end') assert.fail(`a good 101 must open the WebSocket, got ${code}: ${failure.message}`);
    if (!websocket && plan.then !== 'stall' && !connectErrors.has(code)) connectErrors.set(code, { id, exitCode: failure.exitCode });
    return code;
  }

  /** A token for some cases: 403 messages name its user. */
  function rngToken(id: number): string | undefined {
    return id % 3 === 0 ? undefined : TOKEN;
  }

  it('CONNECT: every answer ends in a tunnel carrying every byte after the head, or a BurrowError with a stable code', async (t) => {
    const report = await fuzz('connect-answer', { runs: 500, budgetMs: 10_000 }, (rng) => answerPlan(rng, false), (plan) => runCase(plan, false));
    t.diagnostic(summary('connect-answer', report));
  });

  it('WebSocket: every answer to the upgrade ends in a WebSocket or a BurrowError with a stable code', async (t) => {
    const report = await fuzz('websocket-answer', { runs: 400, budgetMs: 10_000 }, (rng) => answerPlan(rng, true), (plan) => runCase(plan, true));
    t.diagnostic(summary('websocket-answer', report));
  });

  it('regressions found by fuzzing', async () => {
    const fixed = (kind: string, text: string, then: AnswerPlan['then']): AnswerPlan => ({ kind, bytes: () => (text ? [Buffer.from(text)] : []), then });
    // A WebSocket gateway that accepted TLS and then stayed silent hung burrow forever: ws's own
    // handshake timeout never fires with an asynchronous createConnection.
    assert.equal(await runCase(fixed('silent', '', 'stall'), true), 'timeout');
    assert.equal(await runCase(fixed('half a head', 'HTTP/1.0 404 OK\r\nX-Long: vvvv', 'stall'), true), 'timeout');
    // An answer Node's HTTP parser rejects (HPE_*) was "cannot connect to … (exit 7)": the proxy was
    // reached and spoke nonsense, which is exit 9.
    assert.equal(await runCase(fixed('strict parser', 'HTTP/1.1 418 x\r\nContent-Length: 99999999999999999999\r\n\r\n', 'end'), true), 'BURROW_PROXY_PROTOCOL');
    assert.equal(await runCase(fixed('binary', '\u0000\u00ff\r\n\r\n', 'end'), true), 'BURROW_PROXY_PROTOCOL');
    // An SSH banner or an IMAP greeting with the connection left open waited --connect-timeout
    // for a blank line, then blamed the network (BURROW_TIMEOUT, exit 7).
    assert.equal(await runCase(fixed('ssh banner', 'SSH-2.0-OpenSSH_9.2\r\n', 'stall'), false), 'BURROW_PROXY_PROTOCOL');
    assert.equal(await runCase(fixed('imap greeting', '* OK ready\r\n', 'stall'), false), 'BURROW_PROXY_PROTOCOL');
  });

  it('spawned burrow: the same answers give the same exit code and one line on stderr', async (t) => {
    const sample = [...connectErrors.entries()];
    assert.ok(sample.length >= 3, `several distinct failures to replay (${sample.map(([c]) => c).join(', ')})`);
    const report = await fuzz(
      'connect-answer-spawned',
      { runs: 8, budgetMs: 15_000 },
      (_rng, index) => sample[index % sample.length]!,
      async ([code, { id, exitCode }]) => {
        const r = await runBurrow(
          ['tcp', '--listen', '-', `case-${id}.fuzz.test:22`, '--pomerium-url', `https://localhost:${proxy.port}`, '--alternate-ca-path', fixture('ca.pem'), '--connect-timeout', '5'],
          { env: { BURROW_SERVICE_ACCOUNT: TOKEN }, timeoutMs: 15_000 },
        );
        assert.equal(r.code, exitCode, `the exit code of ${code}; stderr:\n${r.stderr}`);
        oneLineFailure(r.stderr, TOKEN);
        assert.equal(r.stdout.length, 0, 'nothing on stdout');
        return `exit ${r.code}`;
      },
    );
    t.diagnostic(summary('connect-answer-spawned', report));
  });
});
