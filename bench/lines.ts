/**
 * LineReceiver against a `node:readline` pipeline, lines per second over a
 * real TCP socket on 127.0.0.1.
 *
 * The bytes: 100 MiB of 10-byte lines, `"123456789\n"` (delimiter `\n`), so
 * 10,485,760 lines. A child process (so the writer never shares this
 * thread) connects and writes them in 640 KiB writes, honouring
 * backpressure, then closes. This process receives them with
 *
 * - torsion: `listenTCP` and a `LineReceiver` (delimiter `\n`) counting
 *   `lineReceived` calls;
 * - the peer: `net.createServer` and `readline.createInterface({ input:
 *   socket })` counting `'line'` events.
 *
 * Timing runs from the server's accept (`connectionMade` / the
 * `'connection'` event) to the last line (connection lost / readline
 * `'close'`); both counts are checked. Rounds alternate between the two;
 * the best round of each counts.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import readline from 'node:readline';
import { LineReceiver } from '../src/protocols/basic.js';
import { Factory } from '../src/protocols/protocol.js';
import type { IPv4Address } from '../src/reactor/address.js';
import { reactor } from '../src/reactor/reactor.js';
import { listenTCP } from '../src/reactor/tcp.js';
import type { BenchResult } from './common.js';

const LINES_PER_WRITE = 65_536;
const WRITES = 160;
const LINES = LINES_PER_WRITE * WRITES; // 10,485,760: 100 MiB of 10-byte lines
const ROUNDS = 5;

/** The writer: connects to argv[1] and sends WRITES × the pattern, then ends. */
const WRITER = `
const net = require('node:net');
const unit = Buffer.from('123456789\\n');
const pattern = Buffer.alloc(unit.length * ${LINES_PER_WRITE});
for (let i = 0; i < ${LINES_PER_WRITE}; i++) unit.copy(pattern, i * unit.length);
const socket = net.connect({ port: Number(process.argv[1]), host: '127.0.0.1' });
let left = ${WRITES};
const pump = () => {
  while (left > 0) {
    left--;
    if (!socket.write(pattern)) return;
  }
  socket.end();
};
socket.on('connect', pump);
socket.on('drain', pump);
socket.on('error', (e) => { console.error(e); process.exit(1); });
`;

function runWriter(port: number): ChildProcess {
  return spawn(process.execPath, ['-e', WRITER, String(port)], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null) {
      if (child.exitCode === 0) resolve();
      else reject(new Error(`writer exited with ${child.exitCode}`));
      return;
    }
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`writer exited with ${code}`)),
    );
  });
}

/** Counts lines; reports the count and the time from connectionMade to connectionLost. */
class Counter extends LineReceiver {
  static done: ((lines: number, seconds: number) => void) | null = null;
  override delimiter = Buffer.from('\n');
  count = 0;
  #start = 0n;

  override connectionMade(): void {
    this.#start = process.hrtime.bigint();
  }

  override lineReceived(_line: Buffer): void {
    this.count++;
  }

  override connectionLost(): void {
    const seconds = Number(process.hrtime.bigint() - this.#start) / 1e9;
    Counter.done?.(this.count, seconds);
  }
}

async function torsionRound(): Promise<number> {
  const port = listenTCP(reactor, 0, Factory.forProtocol(Counter), { interface: '127.0.0.1' });
  await port.whenListening();
  try {
    const result = new Promise<[number, number]>((resolve) => {
      Counter.done = (lines, seconds) => resolve([lines, seconds]);
    });
    const child = runWriter((port.getHost() as IPv4Address).port);
    const [lines, seconds] = await result;
    await exited(child);
    if (lines !== LINES) throw new Error(`LineReceiver counted ${lines} lines, not ${LINES}`);
    return lines / seconds;
  } finally {
    Counter.done = null;
    await port.stopListening();
  }
}

async function readlineRound(): Promise<number> {
  let finish: (r: [number, number]) => void = () => {};
  const result = new Promise<[number, number]>((resolve) => {
    finish = resolve;
  });
  const server = net.createServer((socket) => {
    const start = process.hrtime.bigint();
    let count = 0;
    const rl = readline.createInterface({ input: socket, crlfDelay: Number.POSITIVE_INFINITY });
    rl.on('line', () => {
      count++;
    });
    rl.on('close', () => {
      finish([count, Number(process.hrtime.bigint() - start) / 1e9]);
      socket.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const child = runWriter((server.address() as net.AddressInfo).port);
    const [lines, seconds] = await result;
    await exited(child);
    if (lines !== LINES) throw new Error(`readline counted ${lines} lines, not ${LINES}`);
    return lines / seconds;
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** Runs the rounds (alternating who goes first) and returns the best of each. */
export async function run(): Promise<BenchResult[]> {
  let torsion = 0;
  let peer = 0;
  for (let round = 0; round < ROUNDS; round++) {
    if (round % 2 === 0) {
      torsion = Math.max(torsion, await torsionRound());
      peer = Math.max(peer, await readlineRound());
    } else {
      peer = Math.max(peer, await readlineRound());
      torsion = Math.max(torsion, await torsionRound());
    }
  }
  return [
    {
      name: 'LineReceiver, 100 MiB of 10-byte lines over TCP',
      torsion,
      peer,
      peerName: 'node:readline',
      unit: 'lines/s',
      higherIsBetter: true,
      target: 1.5,
    },
  ];
}

// `tsx bench/lines.ts` runs it alone.
if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  for (const r of await run()) {
    console.log(
      `${r.name}: torsion ${Math.round(r.torsion).toLocaleString('en-US')} ${r.unit}, ` +
        `${r.peerName} ${Math.round(r.peer).toLocaleString('en-US')} ${r.unit}, ` +
        `${(r.torsion / r.peer).toFixed(2)}x (target ${r.target}x)`,
    );
  }
}
