/**
 * The reference the targets are set against: the plainest Node tunnel client there is
 * (tls.connect, CONNECT with the token, then pipe stdin/stdout), in stdio mode like an ssh
 * ProxyCommand. burrow has to beat this, not just match it.
 *
 *   node dist/test/bench/plain-client.js <proxy-host> <proxy-port> <dest host:port> <ca.pem>
 *   (token in BENCH_TOKEN)
 */
import { readFileSync } from 'node:fs';
import { connect } from 'node:tls';

const [host = 'localhost', port = '443', dest = '', caPath = ''] = process.argv.slice(2);
const socket = connect({ host, port: Number(port), servername: host, ca: readFileSync(caPath) });
socket.setNoDelay(true);
socket.once('secureConnect', () => {
  socket.write(`CONNECT ${dest} HTTP/1.1\r\nHost: ${dest}\r\nAuthorization: Pomerium ${process.env.BENCH_TOKEN ?? ''}\r\n\r\n`);
});
let head = Buffer.alloc(0);
const onHead = (chunk: Buffer): void => {
  head = Buffer.concat([head, chunk]);
  const end = head.indexOf('\r\n\r\n');
  if (end < 0) return;
  socket.off('data', onHead);
  if (!/^HTTP\/1\.[01] 200/.test(head.toString('latin1', 0, end))) {
    process.stderr.write(`plain-client: ${head.toString('latin1', 0, end).split('\r\n')[0]}\n`);
    process.exit(1);
  }
  const rest = head.subarray(end + 4);
  if (rest.length > 0) process.stdout.write(rest);
  socket.pipe(process.stdout);
  process.stdin.pipe(socket);
};
socket.on('data', onHead);
socket.on('end', () => process.exit(0));
socket.on('error', (error) => {
  process.stderr.write(`plain-client: ${error.message}\n`);
  process.exit(1);
});
