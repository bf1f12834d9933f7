/**
 * The torsion side of the AMP benchmark's load: one connection, `--calls`
 * Sum calls with at most `--window` in flight, after a warm-up; prints
 * `calls/s N` (the best of `--rounds` runs).
 *
 *     npx tsx bench/peers/amp-client.ts --port PORT [--calls 20000] [--window 100] [--rounds 5]
 */

import { parseArgs } from 'node:util';
import { AMP, command, Integer } from '../../src/protocols/amp.js';
import { ClientCreator } from '../../src/protocols/protocol.js';
import { Deferred } from '../../src/reactor/deferred.js';
import type { Failure } from '../../src/reactor/failure.js';
import { reactor } from '../../src/reactor/reactor.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    calls: { type: 'string', default: '20000' },
    window: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '5' },
  },
});

// The same command as examples/amp-calculator.ts (importing it would run that script).
const Sum = command('Sum', { arguments: { a: Integer, b: Integer }, response: { total: Integer } });

/** Runs `calls` Sums with `window` in flight; resolves with calls/s. */
function measure(amp: AMP, calls: number, window: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let sent = 0;
    let done = 0;
    const start = process.hrtime.bigint();
    const onAnswer = ({ total }: { total: number }, expected: number): void => {
      if (total !== expected) reject(new Error(`bad total ${total} != ${expected}`));
      done++;
      if (sent < calls) send();
      else if (done === calls) resolve(calls / (Number(process.hrtime.bigint() - start) / 1e9));
    };
    const onError = (failure: Failure): void => reject(failure.value);
    const send = (): void => {
      const a = sent++;
      amp.callRemote(Sum, { a, b: 1 }).addCallbacks(onAnswer, onError, [a + 1]);
    };
    for (let i = 0; i < window && i < calls; i++) send();
  });
}

async function main(): Promise<void> {
  const calls = Number(values.calls);
  const window = Number(values.window);
  const amp = await new ClientCreator(reactor, AMP).connectTCP(values.host, Number(values.port));
  await measure(amp, Math.min(calls, 5000), window); // warm-up
  let best = 0;
  for (let i = 0; i < Number(values.rounds); i++)
    best = Math.max(best, await measure(amp, calls, window));
  console.log(`calls/s ${best}`);
  const lost = new Deferred<void>();
  amp.connectionLost = (reason) => {
    AMP.prototype.connectionLost.call(amp, reason);
    lost.callback();
  };
  amp.transport.loseConnection();
  await lost;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
