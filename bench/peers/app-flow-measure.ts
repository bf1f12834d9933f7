/**
 * One app-gateway flow-control measurement, shared by `bench/app-flow.ts`
 * and `test/app-flow.test.ts`: starts a flow server (torsion's
 * `bench/peers/app-flow-server.ts` or the uvicorn peer
 * `bench/peers/app_flow_asgi.py`) in its own process, drives one scenario
 * with the clients of `bench/peers/app-flow-client.ts`, and samples the
 * server's RSS from `/proc/PID/status` every 50 ms meanwhile.
 *
 * Scenarios (both servers serve the same paths): `upload` (the app consumes
 * at the given rate through `onGet` / `receive()`); `download-put`,
 * `download-producer`, `download-pull` (torsion's app puts while `writable`
 * and waits for `onDrain`, or is a push or pull producer; uvicorn's app always
 * calls `send()` in a loop) to a client reading at the given rate.
 *
 * Each server prints `listening on tcp:127.0.0.1:PORT`, then one
 * `stats {json}` line per request it completes (its own counts).
 *
 * @module
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  type DownloadResult,
  download,
  type Framing,
  get,
  MIB,
  type UploadResult,
  upload,
} from './app-flow-client.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Debian's interpreter, with python3-uvicorn. */
export const PYTHON = '/usr/bin/python3';

// ---------------------------------------------------------------------- servers

/** Which server hosts the apps. */
export type PeerKind = 'torsion' | 'uvicorn';

/** The counts a server printed for one request (`stats {json}`). */
export type ServerStats = Record<string, number | string | boolean>;

/** A flow server running in its own process. */
export interface FlowServer {
  readonly kind: PeerKind;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  /** The next `stats` line not yet taken (waits up to `timeoutMs` for it). */
  nextStats(timeoutMs?: number): Promise<ServerStats>;
  /** Drops the `stats` lines printed but not taken (left by a transfer that failed). */
  discardStats(): void;
  /** Kills the process and waits for its exit. */
  stop(): Promise<void>;
}

/**
 * Starts the `kind` flow server as a child process and waits until it
 * listens. Its stderr is passed through (its errors show).
 * @throws (rejects) if the process exits before listening, or does not listen in 20 s.
 */
export function startFlowServer(kind: PeerKind): Promise<FlowServer> {
  const argv =
    kind === 'torsion'
      ? [process.execPath, '--expose-gc', '--import', 'tsx', 'bench/peers/app-flow-server.ts']
      : [PYTHON, 'bench/peers/app_flow_asgi.py'];
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: root,
    env: { ...process.env, PYTHONPATH: '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const stats: ServerStats[] = [];
  const waiters: ((s: ServerStats) => void)[] = [];
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      resolve();
    });
  });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${kind} flow server did not listen within 20 s`));
    }, 20_000);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${kind} flow server exited before listening (${code ?? signal})`));
    });
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      for (let nl = out.indexOf('\n'); nl !== -1; nl = out.indexOf('\n')) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        const listening = /^listening on tcp:[\d.]+:(\d+)$/.exec(line);
        if (listening !== null) {
          clearTimeout(timer);
          resolve(server(Number(listening[1])));
        } else if (line.startsWith('stats ')) {
          const s = JSON.parse(line.slice(6)) as ServerStats;
          const waiter = waiters.shift();
          if (waiter !== undefined) waiter(s);
          else stats.push(s);
        } else if (line.length > 0) {
          console.log(`[${kind} server] ${line}`);
        }
      }
    });
  });

  function server(port: number): FlowServer {
    return {
      kind,
      child,
      pid: child.pid!,
      port,
      nextStats(timeoutMs = 10_000) {
        const ready = stats.shift();
        if (ready !== undefined) return Promise.resolve(ready);
        return new Promise((resolve, reject) => {
          const timer = setTimeout(() => {
            waiters.splice(waiters.indexOf(take), 1);
            reject(new Error(`${kind} flow server printed no stats within ${timeoutMs} ms`));
          }, timeoutMs);
          const take = (s: ServerStats): void => {
            clearTimeout(timer);
            resolve(s);
          };
          waiters.push(take);
        });
      },
      discardStats() {
        stats.length = 0;
      },
      async stop() {
        if (!exited) child.kill('SIGKILL');
        await exit;
      },
    };
  }
}

// ---------------------------------------------------------------------- RSS

/** The resident set size of process `pid` in bytes (VmRSS), or null once it is gone. */
export function readRss(pid: number): number | null {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'latin1');
  } catch {
    return null;
  }
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m === null ? null : Number(m[1]) * 1024;
}

/** One RSS sample: seconds since the sampler started, and bytes. */
export interface RssSample {
  readonly t: number;
  readonly rss: number;
}

/** Samples a process's RSS every `intervalMs` (50 ms) until stopped. */
export class RssSampler {
  readonly samples: RssSample[] = [];
  readonly #pid: number;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | null = null;
  #start = 0;

  constructor(pid: number, intervalMs = 50) {
    this.#pid = pid;
    this.#intervalMs = intervalMs;
  }

  start(): void {
    this.#start = performance.now();
    this.sample();
    this.#timer = setInterval(() => this.sample(), this.#intervalMs);
  }

  /** Takes one sample now (also called by the timer). */
  sample(): void {
    const rss = readRss(this.#pid);
    if (rss !== null) this.samples.push({ t: (performance.now() - this.#start) / 1000, rss });
  }

  /** Stops sampling (after one last sample); returns the peak RSS seen. */
  stop(): number {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.sample();
    let peak = 0;
    for (const s of this.samples) peak = Math.max(peak, s.rss);
    return peak;
  }
}

/** The server's steady RSS: the median of `count` samples `intervalMs` apart. */
export async function steadyRss(pid: number, count = 6, intervalMs = 50): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < count; i++) {
    const rss = readRss(pid);
    if (rss === null) throw new Error(`process ${pid} is gone`);
    values.push(rss);
    await sleep(intervalMs);
  }
  values.sort((a, b) => a - b);
  return values[Math.floor(values.length / 2)]!;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The torsion flow server's memory after a full GC (`GET /memory`), or null
 * when the server has no such figure (uvicorn: 404).
 */
export async function memoryAfterGc(server: FlowServer): Promise<ServerStats | null> {
  const { status, body } = await get(server.port, '/memory');
  return status === 200 ? (JSON.parse(body) as ServerStats) : null;
}

// ---------------------------------------------------------------------- one measurement

/** A scenario: `upload`, or `download` with torsion's app mode (uvicorn's app always uses `send`). */
export type Scenario = 'upload' | 'download-put' | 'download-producer' | 'download-pull';

/** How big and how fast. */
export interface FlowOptions {
  /** Bytes transferred in the measured run. */
  readonly bytes: number;
  /** The app's (upload) or the client's (download) rate in bytes per second. */
  readonly rate: number;
  /** Upload framing (default `length`). */
  readonly framing?: Framing;
  /** Bytes of the unmeasured, unpaced warm-up run first (default 16 MiB; 0: none). */
  readonly warmupBytes?: number;
}

/** One scenario's figures for one server. */
export interface FlowMeasurement {
  readonly peer: PeerKind;
  readonly scenario: Scenario;
  /** Server RSS after the warm-up, before the run (median of a few samples). */
  readonly baseline: number;
  /** Highest server RSS sampled during the run. */
  readonly peak: number;
  /** `peak - baseline`. */
  readonly growth: number;
  /** Bytes per second the client achieved. */
  readonly throughput: number;
  /** Every RSS sample of the run (for a report of where the memory went). */
  readonly samples: readonly RssSample[];
  readonly client: UploadResult | DownloadResult;
  /** The server's own counts for the run (torsion's include its memory at the end). */
  readonly server: ServerStats;
  /** The server's memory after the run and a full GC (torsion only; else null). */
  readonly afterGc: ServerStats | null;
}

/** Runs one transfer of `scenario` (no measuring); returns the client's view. */
function transfer(
  server: FlowServer,
  scenario: Scenario,
  bytes: number,
  rate: number,
  framing: Framing,
): Promise<UploadResult | DownloadResult> {
  // Generous: three times the paced duration, plus a minute for a slow machine.
  const timeoutMs = (bytes / rate) * 3000 + 60_000;
  if (scenario === 'upload') return upload(server.port, bytes, rate, framing, timeoutMs);
  const mode = server.kind === 'uvicorn' ? 'send' : scenario.slice('download-'.length);
  return download(server.port, bytes, mode, rate, timeoutMs);
}

/**
 * Measures `scenario` on `server`: an unpaced warm-up transfer, a settle,
 * the baseline RSS, then the paced transfer with RSS sampled every 50 ms.
 * @throws (rejects) if a transfer fails, or the upload is not answered 200.
 */
export async function measureFlow(
  server: FlowServer,
  scenario: Scenario,
  options: FlowOptions,
): Promise<FlowMeasurement> {
  const framing = options.framing ?? 'length';
  const warmup = options.warmupBytes ?? 16 * MIB;
  server.discardStats();
  if (warmup > 0) {
    const w = await transfer(server, scenario, warmup, 1024 * MIB, framing);
    if (w.status !== 200) throw new Error(`${server.kind} ${scenario} warm-up: status ${w.status}`);
    await server.nextStats();
    await sleep(300);
  }
  const baseline = await steadyRss(server.pid);
  const sampler = new RssSampler(server.pid);
  sampler.start();
  let client: UploadResult | DownloadResult;
  try {
    client = await transfer(server, scenario, options.bytes, options.rate, framing);
  } finally {
    sampler.stop();
  }
  if (client.status !== 200) throw new Error(`${server.kind} ${scenario}: status ${client.status}`);
  const stats = await server.nextStats();
  const afterGc = await memoryAfterGc(server);
  const peak = Math.max(...sampler.samples.map((s) => s.rss));
  return {
    peer: server.kind,
    scenario,
    baseline,
    peak,
    growth: peak - baseline,
    throughput: client.bytes / client.seconds,
    samples: sampler.samples,
    client,
    server: stats,
    afterGc,
  };
}

/** A short account of a measurement's RSS over time: `t=…s rss=…MB` at ~`points` even steps. */
export function rssTimeline(m: FlowMeasurement, points = 8): string {
  const step = Math.max(1, Math.floor(m.samples.length / points));
  const parts: string[] = [];
  for (let i = 0; i < m.samples.length; i += step) {
    const s = m.samples[i]!;
    parts.push(`${s.t.toFixed(1)}s:${(s.rss / 1e6).toFixed(1)}MB`);
  }
  return parts.join(' ');
}
