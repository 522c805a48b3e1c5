/** What run.ts and servers.ts agree on: the bench server's little protocol and the start-up message. */

/** The CONNECT destination routed to the bench server. */
export const BENCH_DEST = 'bench.corp.test:22';
/** The CONNECT-UDP destination routed to the bench's UDP echo. */
export const UDP_BENCH_DEST = 'echo.corp.test:7';
/** The host whose `tcp+https://…:22` route leads to the ssh section's sshd (only when the bench starts one). */
export const SSH_BENCH_HOST = 'ssh.corp.test';
/** The path of the `wss://localhost:PORT…` route to the same server. */
export const WS_PATH = '/bench';

/** Sent by the bench server the moment it accepts a connection (connection set-up is timed to it). */
export const GREETING = Buffer.from('G');
/** Sent once an upload's N bytes have all arrived. */
export const ACK = Buffer.from('K');

/** The command: one op byte and N as a big-endian uint64. */
export const HEADER_BYTES = 9;
export const Op = { Upload: 0x55, Download: 0x44, Echo: 0x45 } as const;

export function header(op: number, size: number): Buffer {
  const out = Buffer.alloc(HEADER_BYTES);
  out[0] = op;
  out.writeBigUInt64BE(BigInt(size), 1);
  return out;
}

/** Posted by servers.ts once everything listens. */
export interface ServersReady {
  benchPort: number;
  tlsPort: number;
  /** The UDP echo (direct UDP, the ceiling of the UDP row). */
  udpEchoPort: number;
  proxyUrl: string;
  proxyPort: number;
  caPath: string;
  token: string;
}
