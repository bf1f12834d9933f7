/**
 * Shared shape and helpers of the benchmarks. Each bench module exports
 * `run(): Promise<BenchResult[]>`; bench/index.ts runs them all in one process
 * (servers under test run as child processes) and prints ratios.
 */

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
