/**
 * Deferred 10-step chain vs a Promise `.then` x10 chain: each operation
 * builds the chain, fires it, and observes the final value.
 */

import { Deferred } from '../src/reactor/deferred.js';
import { type BenchResult, bestOpsPerSecond } from './common.js';

const STEPS = 10;
const N = 100_000;

const inc = (v: number): number => v + 1;

function deferredChains(): number {
  let total = 0;
  const record = (v: number): void => {
    total += v;
  };
  for (let i = 0; i < N; i++) {
    const d = new Deferred<number>();
    for (let s = 0; s < STEPS; s++) d.addCallback(inc);
    d.addCallback(record);
    d.callback(i);
  }
  return total;
}

async function promiseChains(): Promise<number> {
  let total = 0;
  const record = (v: number): void => {
    total += v;
  };
  const pending: Promise<void>[] = new Array(N);
  for (let i = 0; i < N; i++) {
    let p = Promise.resolve(i);
    for (let s = 0; s < STEPS; s++) p = p.then(inc);
    pending[i] = p.then(record);
  }
  await Promise.all(pending);
  return total;
}

export async function run(): Promise<BenchResult[]> {
  // Warm up both paths before measuring.
  deferredChains();
  await promiseChains();
  const torsion = await bestOpsPerSecond(N, deferredChains);
  const peer = await bestOpsPerSecond(N, promiseChains);
  return [
    {
      name: `Deferred ${STEPS}-step chain`,
      torsion,
      peer,
      peerName: `Promise .then x${STEPS}`,
      unit: 'chains/s',
      higherIsBetter: true,
      target: 2,
    },
  ];
}
