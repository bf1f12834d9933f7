/**
 * TCP echo throughput: torsion's `examples/echo.ts` against a plain `node:net`
 * echo server (`bench/peers/net-echo.mjs`, `socket.pipe(socket)`).
 *
 * Each server runs in its own child process, so the load generator (this
 * process) never shares the server's thread. The same client drives both: 8
 * connections, each pipelining 64 KiB writes with at most 1 MiB in flight
 * (sent, not yet echoed), until 256 MiB in all have come back. Rounds
 * alternate between the two servers (and which goes first); the best round
 * of each counts.
 */

import net from 'node:net';
import { type BenchResult, bestOfAlternating, startServer, stopServer } from './common.js';

const CONNECTIONS = 8;
const CHUNK = 64 * 1024;
const TOTAL = 256 * 1024 * 1024;
const WINDOW = 1024 * 1024;
const ROUNDS = 7;

/** One connection's share: sends `bytes` in 64 KiB writes, resolves once all came back. */
function drive(port: number, bytes: number, payload: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', noDelay: true });
    let sent = 0;
    let received = 0;
    const pump = (): void => {
      while (sent < bytes && sent - received < WINDOW) {
        sent += CHUNK;
        if (!socket.write(payload)) return; // wait for 'drain'
      }
    };
    socket.on('connect', pump);
    socket.on('drain', pump);
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received >= bytes) {
        socket.destroy();
        resolve();
      } else {
        pump();
      }
    });
    socket.on('error', reject);
  });
}

/** MB/s (10^6 bytes) echoed by the server on `port`, for `total` bytes. */
async function measure(port: number, total: number): Promise<number> {
  const payload = Buffer.alloc(CHUNK, 0x61);
  const share = total / CONNECTIONS;
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: CONNECTIONS }, () => drive(port, share, payload)));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return total / 1e6 / seconds;
}

export async function run(): Promise<BenchResult[]> {
  const node = process.execPath;
  const torsion = await startServer('torsion', [
    node,
    '--import',
    'tsx',
    'examples/echo.ts',
    '--port',
    '0',
  ]);
  const peer = await startServer('node:net', [node, 'bench/peers/net-echo.mjs', '--port', '0']);
  try {
    // Warm both up (JIT, socket buffers).
    await measure(torsion.port, TOTAL / 8);
    await measure(peer.port, TOTAL / 8);
    const [bestTorsion, bestPeer] = await bestOfAlternating(
      ROUNDS,
      () => measure(torsion.port, TOTAL),
      () => measure(peer.port, TOTAL),
      Math.max,
    );
    return [
      {
        name: 'TCP echo, 8 conns x 64 KiB writes, 256 MiB',
        torsion: bestTorsion,
        peer: bestPeer,
        peerName: 'node:net pipe',
        unit: 'MB/s',
        higherIsBetter: true,
        target: 0.9,
      },
    ];
  } finally {
    await Promise.all([stopServer(torsion, 'SIGINT'), stopServer(peer, 'SIGINT')]);
  }
}
