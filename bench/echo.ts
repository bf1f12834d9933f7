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

import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import type { BenchResult } from './common.js';

const CONNECTIONS = 8;
const CHUNK = 64 * 1024;
const TOTAL = 256 * 1024 * 1024;
const WINDOW = 1024 * 1024;
const ROUNDS = 7;

const root = fileURLToPath(new URL('..', import.meta.url));

interface Server {
  child: ChildProcess;
  port: number;
}

/** Spawns `args` under node and waits for its `listening on HOST:PORT` line. */
function startServer(args: string[]): Promise<Server> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...args, '--port', '0'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    const onData = (chunk: Buffer): void => {
      out += chunk.toString();
      const m = /listening on [^\s]+:(\d+)/.exec(out);
      if (m !== null) {
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        resolve({ child, port: Number(m[1]) });
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`server ${args.join(' ')} exited (${code})`)));
  });
}

function stopServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (server.child.exitCode !== null) return resolve();
    server.child.once('exit', () => resolve());
    server.child.kill('SIGINT');
  });
}

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
  const torsion = await startServer(['--import', 'tsx', 'examples/echo.ts']);
  const peer = await startServer(['bench/peers/net-echo.mjs']);
  try {
    // Warm both up (JIT, socket buffers).
    await measure(torsion.port, TOTAL / 8);
    await measure(peer.port, TOTAL / 8);
    let bestTorsion = 0;
    let bestPeer = 0;
    // Alternate which side goes first, so neither always runs on a warmer machine.
    for (let i = 0; i < ROUNDS; i++) {
      if (i % 2 === 0) {
        bestTorsion = Math.max(bestTorsion, await measure(torsion.port, TOTAL));
        bestPeer = Math.max(bestPeer, await measure(peer.port, TOTAL));
      } else {
        bestPeer = Math.max(bestPeer, await measure(peer.port, TOTAL));
        bestTorsion = Math.max(bestTorsion, await measure(torsion.port, TOTAL));
      }
    }
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
    await Promise.all([stopServer(torsion), stopServer(peer)]);
  }
}
