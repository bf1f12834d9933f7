/**
 * AMP calls per second: torsion↔torsion against Twisted↔Twisted on the same
 * machine, the same workload: one connection, 20,000 `Sum` calls with 100 in
 * flight (after a 5,000-call warm-up), best of 5 runs.
 *
 * Every side runs in its own process: the torsion server is
 * `examples/amp-calculator.ts --server`, its client `bench/peers/amp-client.ts`;
 * the Twisted ones are `bench/peers/amp_server.py` and `amp_client.py`, run
 * with Debian's `/usr/bin/python3` (python3-twisted). The two pairs run one
 * after the other, twice, alternating which goes first; the best counts.
 */

import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  type BenchResult,
  type BenchServer,
  bestOfAlternating,
  repoRoot,
  startServer,
  stopServer,
} from './common.js';

const CALLS = 20_000;
const WINDOW = 100;
const ROUNDS = 5;
const PYTHON = '/usr/bin/python3';
const PY_ENV = { ...process.env, PYTHONPATH: '' };

/** Starts `argv` (Python's path reset); resolves once it printed its port. */
function startPeer(name: string, argv: string[]): Promise<BenchServer> {
  return startServer(name, argv, { env: PY_ENV });
}

/** Runs a client process to completion; returns the calls/s it printed. */
function runClient(command: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: repoRoot,
      env: PY_ENV,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.once('exit', (code) => {
      const m = /calls\/s ([\d.]+)/.exec(out);
      if (code !== 0 || m === null) reject(new Error(`${args.join(' ')} failed (${code}): ${out}`));
      else resolve(Number(m[1]));
    });
  });
}

const load = ['--calls', String(CALLS), '--window', String(WINDOW), '--rounds', String(ROUNDS)];

async function torsionPair(): Promise<number> {
  const server = await startPeer('torsion', [
    process.execPath,
    '--import',
    'tsx',
    'examples/amp-calculator.ts',
    '--server',
    '--port',
    '0',
  ]);
  try {
    return await runClient(process.execPath, [
      '--import',
      'tsx',
      'bench/peers/amp-client.ts',
      '--port',
      String(server.port),
      ...load,
    ]);
  } finally {
    await stopServer(server, 'SIGINT');
  }
}

async function twistedPair(): Promise<number> {
  const server = await startPeer('Twisted', [PYTHON, 'bench/peers/amp_server.py']);
  try {
    return await runClient(PYTHON, [
      'bench/peers/amp_client.py',
      '--port',
      String(server.port),
      ...load,
    ]);
  } finally {
    await stopServer(server, 'SIGINT');
  }
}

export async function run(): Promise<BenchResult[]> {
  const probe = existsSync(PYTHON)
    ? spawnSync(PYTHON, ['-c', 'import twisted; print(twisted.__version__)'], {
        env: PY_ENV,
        encoding: 'utf8',
      })
    : null;
  if (probe === null || probe.status !== 0) {
    throw new Error(
      `the AMP bench needs Twisted under ${PYTHON}: apt-get install -y python3-twisted`,
    );
  }
  const [torsion, twisted] = await bestOfAlternating(2, torsionPair, twistedPair, Math.max);
  return [
    {
      name: `AMP Sum calls, ${WINDOW} in flight, ${CALLS.toLocaleString('en-US')}`,
      torsion,
      peer: twisted,
      peerName: `Twisted ${probe.stdout.trim()} AMP`,
      unit: 'calls/s',
      higherIsBetter: true,
    },
  ];
}

// `npx tsx bench/amp.ts` runs just this one.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const r of await run()) {
    console.log(
      `${r.name}: torsion ${Math.round(r.torsion)} ${r.unit}, ${r.peerName} ${Math.round(r.peer)} ${r.unit}`,
    );
  }
}
