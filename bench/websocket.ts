/**
 * WebSocket echo: messages per second echoed through torsion's
 * `WebSocketResource` (a `Site` whose root is the resource, an echo
 * `WebSocketProtocol`: bench/peers/ws-echo-torsion.ts) against a plain `ws`
 * `WebSocketServer` on `node:http` (bench/peers/ws-echo-plain.ts). Both
 * frame with the same `ws`; the ratio is the cost of hosting it in torsion
 * (the target: at most 10%, i.e. ≥ 0.9×). torsion converts text messages to
 * strings (the protocol API) where the plain echo sends the received Buffer
 * back; torsion gathers the replies to one socket read into one `writev`
 * where `ws` alone makes a system call per message.
 *
 * The same load generator drives both, in its own process
 * (bench/peers/ws-client.ts): 50 connections, each keeping 32 messages of 64
 * bytes in flight, until 300,000 came back; binary messages, then text. The
 * servers are pinned to CPU 0 and the client to CPU 1 (`taskset`, when
 * there are two CPUs or more). Rounds alternate which server goes first; the
 * best round of each counts. Also reported, without a target: messages per
 * second of server CPU time (from `/proc/PID/stat`), steadier than the wall
 * clock on a shared machine.
 */

import { spawnSync } from 'node:child_process';
import {
  type BenchResult,
  type BenchServer,
  bestOfAlternating,
  cpuSeconds,
  maxOfEach,
  pinned,
  repoRoot,
  startServer,
  stopServer,
} from './common.js';

const ROUNDS = 3;
const CONNECTIONS = 50;
const WINDOW = 32;
const MESSAGES = 300_000;
const SIZE = 64;

interface Load {
  /** Messages echoed per second (wall clock, at the client). */
  rate: number;
  /** Messages echoed per second of server CPU time. */
  perCpu: number;
}

/** A server script run with tsx, pinned to CPU 0. */
function serverArgv(script: string): string[] {
  return pinned(0, [process.execPath, '--import', 'tsx', script]);
}

/** One client run against `server`. */
function measure(server: BenchServer, text: boolean, messages = MESSAGES): Load {
  const argv = [
    process.execPath,
    '--import',
    'tsx',
    'bench/peers/ws-client.ts',
    '--port',
    String(server.port),
    '--connections',
    String(CONNECTIONS),
    '--window',
    String(WINDOW),
    '--messages',
    String(messages),
    '--size',
    String(SIZE),
  ];
  if (text) argv.push('--text');
  const [command, ...args] = pinned(1, argv);
  const before = cpuSeconds(server.child.pid!);
  const run = spawnSync(command!, args, { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 });
  const line = run.stdout.trim().split('\n').pop() ?? '';
  let result: { messages: number; seconds: number };
  try {
    result = JSON.parse(line) as { messages: number; seconds: number };
  } catch {
    throw new Error(`ws-client against ${server.name} failed: ${run.stdout}${run.stderr}`);
  }
  // The CPU figure includes the connections' handshakes and closes (same on both sides).
  const used = cpuSeconds(server.child.pid!) - before;
  return {
    rate: result.messages / result.seconds,
    perCpu: used > 0 ? result.messages / used : 0,
  };
}

/** Best of `ROUNDS` for each server, alternating which goes first. */
function compare(a: BenchServer, b: BenchServer, text: boolean): Promise<[Load, Load]> {
  measure(a, text, MESSAGES / 4); // warm-up (JIT)
  measure(b, text, MESSAGES / 4);
  return bestOfAlternating(
    ROUNDS,
    () => measure(a, text),
    () => measure(b, text),
    maxOfEach,
  );
}

export async function run(): Promise<BenchResult[]> {
  const torsion = await startServer('torsion', serverArgv('bench/peers/ws-echo-torsion.ts'));
  try {
    const plain = await startServer('ws on node:http', serverArgv('bench/peers/ws-echo-plain.ts'));
    try {
      const [tb, pb] = await compare(torsion, plain, false);
      const [tt, pt] = await compare(torsion, plain, true);
      const shape = `${CONNECTIONS}x${WINDOW} in flight, ${SIZE} B`;
      const result = (name: string, t: number, p: number, unit: string, target?: number) => ({
        name,
        torsion: t,
        peer: p,
        peerName: 'ws WebSocketServer',
        unit,
        higherIsBetter: true,
        ...(target === undefined ? {} : { target }),
      });
      return [
        result(`WebSocket echo, binary, ${shape}`, tb.rate, pb.rate, 'msg/s', 0.9),
        result(`WebSocket echo, text, ${shape}`, tt.rate, pt.rate, 'msg/s', 0.9),
        result('WebSocket echo, binary, per server CPU s', tb.perCpu, pb.perCpu, 'msg/cpu-s'),
        result('WebSocket echo, text, per server CPU s', tt.perCpu, pt.perCpu, 'msg/cpu-s'),
      ];
    } finally {
      await stopServer(plain);
    }
  } finally {
    await stopServer(torsion);
  }
}
