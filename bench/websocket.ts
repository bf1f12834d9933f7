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

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { BenchResult } from './common.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const ROUNDS = 3;
const CONNECTIONS = 50;
const WINDOW = 32;
const MESSAGES = 300_000;
const SIZE = 64;

interface Server {
  readonly name: string;
  readonly child: ChildProcess;
  readonly port: number;
}

let pin: boolean | null = null;
function pinned(cpu: number, argv: string[]): string[] {
  pin ??= availableParallelism() >= 2 && spawnSync('taskset', ['-c', '0', 'true']).status === 0;
  return pin ? ['taskset', '-c', String(cpu), ...argv] : argv;
}

function startServer(name: string, script: string): Promise<Server> {
  const [command, ...args] = pinned(0, [process.execPath, '--import', 'tsx', script]);
  return new Promise((resolve, reject) => {
    const child = spawn(command!, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    const onData = (chunk: Buffer): void => {
      out += chunk.toString();
      const m = /listening on [^\s]+:(\d+)/.exec(out);
      if (m !== null) {
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        resolve({ name, child, port: Number(m[1]) });
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${name} server exited (${code})`)));
  });
}

function stopServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (server.child.exitCode !== null || server.child.signalCode !== null) return resolve();
    server.child.once('exit', () => resolve());
    server.child.kill('SIGKILL');
  });
}

/** CPU seconds (user + system) the process has used, from /proc. */
function cpuSeconds(pid: number): number {
  const stat = spawnSync('cat', [`/proc/${pid}/stat`]).stdout.toString();
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the command.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface Load {
  /** Messages echoed per second (wall clock, at the client). */
  rate: number;
  /** Messages echoed per second of server CPU time. */
  perCpu: number;
}

/** One client run against `server`. */
function measure(server: Server, text: boolean, messages = MESSAGES): Load {
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
  const run = spawnSync(command!, args, { cwd: root, encoding: 'utf8', timeout: 120_000 });
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

function best(x: Load, y: Load): Load {
  return { rate: Math.max(x.rate, y.rate), perCpu: Math.max(x.perCpu, y.perCpu) };
}

/** Best of `ROUNDS` for each server, alternating which goes first. */
function compare(a: Server, b: Server, text: boolean): [Load, Load] {
  measure(a, text, MESSAGES / 4); // warm-up (JIT)
  measure(b, text, MESSAGES / 4);
  let bestA: Load = { rate: 0, perCpu: 0 };
  let bestB: Load = { rate: 0, perCpu: 0 };
  for (let i = 0; i < ROUNDS; i++) {
    if (i % 2 === 0) {
      bestA = best(bestA, measure(a, text));
      bestB = best(bestB, measure(b, text));
    } else {
      bestB = best(bestB, measure(b, text));
      bestA = best(bestA, measure(a, text));
    }
  }
  return [bestA, bestB];
}

export async function run(): Promise<BenchResult[]> {
  const torsion = await startServer('torsion', 'bench/peers/ws-echo-torsion.ts');
  try {
    const plain = await startServer('ws on node:http', 'bench/peers/ws-echo-plain.ts');
    try {
      const [tb, pb] = compare(torsion, plain, false);
      const [tt, pt] = compare(torsion, plain, true);
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
