/**
 * Shared shape and helpers of the benchmarks. Each bench module exports
 * `run(): Promise<BenchResult[]>`; bench/index.ts runs them all in one process
 * (servers under test run as child processes) and prints ratios.
 */

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';

/** One side-by-side measurement of torsion against a named peer. */
export interface BenchResult {
  /** What was measured. */
  name: string;
  /** torsion's figure. */
  torsion: number;
  /** The peer's figure, measured in the same run. */
  peer: number;
  /** Who the peer is, e.g. `Promise`, `setTimeout`, `node:net`. */
  peerName: string;
  /** The unit of both figures, e.g. `ops/s`, `MB/s`. */
  unit: string;
  /** Whether a bigger figure is better (throughput) or worse (latency, memory). */
  higherIsBetter: boolean;
  /** The ratio the issue asks for (torsion/peer when higherIsBetter, else peer/torsion), if any. */
  target?: number;
}

/** Runs `fn` `rounds` times and returns the best ops/s, given `ops` operations per call. */
export async function bestOpsPerSecond(
  ops: number,
  fn: () => unknown,
  rounds = 7,
): Promise<number> {
  let best = 0;
  for (let i = 0; i < rounds; i++) {
    const start = process.hrtime.bigint();
    await fn();
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    best = Math.max(best, ops / seconds);
  }
  return best;
}

/** torsion's advantage as a ratio where > 1 means torsion is better. */
export function advantage(result: BenchResult): number {
  return result.higherIsBetter ? result.torsion / result.peer : result.peer / result.torsion;
}

// ---------------------------------------------------------------------- servers in child processes

/** The repository's root: the working directory of every child process. */
export const repoRoot = fileURLToPath(new URL('..', import.meta.url));

/** A server under test, running as a child process (see {@link startServer}). */
export interface BenchServer {
  /** Who it is, for messages. */
  readonly name: string;
  readonly child: ChildProcess;
  /** The port from its `listening on …:PORT` line. */
  readonly port: number;
  /** The lines it printed on stdout after that one, as they come. */
  readonly lines: string[];
}

/** Options of {@link startServer}. */
export interface StartServerOptions {
  /** The child's stdin: `'pipe'` to talk to it through `child.stdin` (default `'ignore'`). */
  stdin?: 'pipe' | 'ignore';
  /** The child's environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
}

/**
 * Spawns `argv` (a command and its arguments; wrap it in {@link pinned} to
 * pin it to a CPU) in {@link repoRoot}, its stderr shared with this process,
 * and resolves once it prints a line matching `listening on HOST:PORT` on
 * stdout (HOST may be `tcp:ADDRESS`). Rejects if it exits, or cannot be
 * spawned, before that (or if `argv` is empty).
 */
export function startServer(
  name: string,
  argv: readonly string[],
  options: StartServerOptions = {},
): Promise<BenchServer> {
  const [command, ...args] = argv;
  if (command === undefined) return Promise.reject(new RangeError(`${name}: no command to start`));
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: repoRoot,
      env: options.env ?? process.env,
      stdio: [options.stdin ?? 'ignore', 'pipe', 'inherit'],
    });
    const lines: string[] = [];
    let out = '';
    let port = 0;
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      let nl = out.indexOf('\n');
      while (nl !== -1) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        const m = port === 0 ? /listening on [^\s]+:(\d+)/.exec(line) : null;
        if (m !== null) {
          port = Number(m[1]);
          resolve({ name, child, port, lines });
        } else {
          lines.push(line);
        }
        nl = out.indexOf('\n');
      }
    });
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${name} server exited (${code})`)));
  });
}

/** Sends `signal` (default `SIGKILL`) to the server unless it has exited; resolves once it has. */
export function stopServer(server: BenchServer, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  return new Promise((resolve) => {
    if (server.child.exitCode !== null || server.child.signalCode !== null) return resolve();
    server.child.once('exit', () => resolve());
    server.child.kill(signal);
  });
}

let canPin: boolean | null = null;

/**
 * `argv` run under `taskset -c CPU` when the machine has two CPUs or more
 * and `taskset` works; else `argv` unchanged. Servers go on CPU 0, load
 * generators on CPU 1, so that they do not take turns on one core.
 */
export function pinned(cpu: number, argv: readonly string[]): string[] {
  canPin ??= availableParallelism() >= 2 && spawnSync('taskset', ['-c', '0', 'true']).status === 0;
  return canPin ? ['taskset', '-c', String(cpu), ...argv] : [...argv];
}

/** CPU seconds (user + system) the process `pid` has used, from /proc. */
export function cpuSeconds(pid: number): number {
  const stat = spawnSync('cat', [`/proc/${pid}/stat`]).stdout.toString();
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the command.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

// ---------------------------------------------------------------------- rounds

/**
 * Measures two sides for `rounds` rounds (at least 1), alternating which goes
 * first (round 0: `a` then `b`; round 1: `b` then `a`; …), so that neither
 * always runs on a cooler or busier machine. Resolves with the best figure
 * of each side, as `best` picks between two. Warm-ups are the caller's.
 */
export async function bestOfAlternating<T>(
  rounds: number,
  a: () => T,
  b: () => T,
  best: (x: Awaited<T>, y: Awaited<T>) => Awaited<T>,
): Promise<[Awaited<T>, Awaited<T>]> {
  if (!Number.isInteger(rounds) || rounds < 1) throw new RangeError(`rounds: ${rounds}`);
  let bestA = await a();
  let bestB = await b();
  for (let i = 1; i < rounds; i++) {
    if (i % 2 === 0) {
      bestA = best(bestA, await a());
      bestB = best(bestB, await b());
    } else {
      bestB = best(bestB, await b());
      bestA = best(bestA, await a());
    }
  }
  return [bestA, bestB];
}

/** The larger of each figure of `x` and `y` (a `best` for {@link bestOfAlternating}). */
export function maxOfEach<T extends Record<keyof T, number>>(x: T, y: T): T {
  const out = { ...x };
  for (const key of Object.keys(y) as (keyof T)[])
    out[key] = Math.max(x[key], y[key]) as T[keyof T];
  return out;
}
