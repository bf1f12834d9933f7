/**
 * Delayed calls: `reactor.callLater` (one heap, one Node timer armed) against
 * raw `setTimeout`/`clearTimeout` (one Node timer object per call, in lists per
 * duration). Rounds alternate between the two sides so that both run under the
 * same GC conditions; the best round of each counts.
 */

import { reactor } from '../src/reactor/reactor.js';
import type { BenchResult } from './common.js';

const N = 100_000;
const WARMUP_ROUNDS = 3;
const ROUNDS = 9;

const noop = (): void => {};

/** Seconds since `start`. */
function since(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** Schedules N calls 10 s out, then cancels them all. Returns ops/s. */
function torsionScheduleCancel(): number {
  const calls = new Array(N);
  const start = process.hrtime.bigint();
  for (let i = 0; i < N; i++) calls[i] = reactor.callLater(10, noop);
  for (let i = 0; i < N; i++) calls[i].cancel();
  return N / since(start);
}

function nodeScheduleCancel(): number {
  const timers = new Array(N);
  const start = process.hrtime.bigint();
  for (let i = 0; i < N; i++) timers[i] = setTimeout(noop, 10_000);
  for (let i = 0; i < N; i++) clearTimeout(timers[i]);
  return N / since(start);
}

/**
 * Schedules N calls with delays of 0–9 ms that all fire. Resolves with
 * `[scheduling ops/s, end-to-end calls/s]` (the latter until the last one ran).
 */
function firing(schedule: (delayMs: number, fn: () => void) => void): Promise<[number, number]> {
  return new Promise((resolve) => {
    let left = N;
    let scheduled = 0;
    const start = process.hrtime.bigint();
    const fn = () => {
      if (--left === 0) resolve([scheduled, N / since(start)]);
    };
    for (let i = 0; i < N; i++) schedule(i % 10, fn);
    scheduled = N / since(start);
  });
}

const torsionSchedule = (delayMs: number, fn: () => void) => {
  reactor.callLater(delayMs / 1000, fn);
};
const nodeSchedule = (delayMs: number, fn: () => void) => {
  setTimeout(fn, delayMs);
};

/** Runs both sides alternately; returns the best figures of each. */
async function alternate<R extends number[]>(
  torsion: () => R | Promise<R>,
  peer: () => R | Promise<R>,
): Promise<[R, R]> {
  for (let i = 0; i < WARMUP_ROUNDS; i++) {
    await torsion();
    await peer();
  }
  let bestTorsion: R | undefined;
  let bestPeer: R | undefined;
  const better = (a: R | undefined, b: R) =>
    a === undefined ? b : (a.map((x, i) => Math.max(x, b[i])) as R);
  for (let i = 0; i < ROUNDS; i++) {
    bestTorsion = better(bestTorsion, await torsion());
    bestPeer = better(bestPeer, await peer());
  }
  return [bestTorsion!, bestPeer!];
}

export async function run(): Promise<BenchResult[]> {
  const [[torsionCancel], [nodeCancel]] = await alternate(
    () => [torsionScheduleCancel()],
    () => [nodeScheduleCancel()],
  );
  const [[torsionSched, torsionTotal], [nodeSched, nodeTotal]] = await alternate(
    () => firing(torsionSchedule),
    () => firing(nodeSchedule),
  );

  const base = { peerName: 'setTimeout', unit: 'ops/s', higherIsBetter: true } as const;
  return [
    { name: 'timers: 1e5 schedule + cancel', torsion: torsionCancel, peer: nodeCancel, ...base },
    {
      name: 'timers: 1e5 schedule (0-9 ms, all fire)',
      torsion: torsionSched,
      peer: nodeSched,
      ...base,
    },
    {
      name: 'timers: 1e5 schedule + fire (0-9 ms)',
      torsion: torsionTotal,
      peer: nodeTotal,
      ...base,
    },
  ];
}
