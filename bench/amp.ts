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

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { BenchResult } from './common.js';

const CALLS = 20_000;
const WINDOW = 100;
const ROUNDS = 5;
const PYTHON = '/usr/bin/python3';
const root = fileURLToPath(new URL('..', import.meta.url));
const PY_ENV = { ...process.env, PYTHONPATH: '' };

interface Server {
  child: ChildProcess;
  port: number;
}

function startServer(command: string, args: string[]): Promise<Server> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: root,
      env: PY_ENV,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    const onData = (chunk: Buffer): void => {
      out += chunk.toString();
      const m = /listening on [^\s]+:(\d+)/.exec(out);
      if (m !== null) {
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        resolve({ child, port: Number(m[1]) });
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited (${code})`)));
  });
}

function stopServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (server.child.exitCode !== null || server.child.signalCode !== null) return resolve();
    server.child.once('exit', () => resolve());
    server.child.kill('SIGINT');
  });
}

/** Runs a client process to completion; returns the calls/s it printed. */
function runClient(command: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: root,
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
  const server = await startServer(process.execPath, [
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
    await stopServer(server);
  }
}

async function twistedPair(): Promise<number> {
  const server = await startServer(PYTHON, ['bench/peers/amp_server.py']);
  try {
    return await runClient(PYTHON, [
      'bench/peers/amp_client.py',
      '--port',
      String(server.port),
      ...load,
    ]);
  } finally {
    await stopServer(server);
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
  let torsion = 0;
  let twisted = 0;
  for (let i = 0; i < 2; i++) {
    if (i % 2 === 0) {
      torsion = Math.max(torsion, await torsionPair());
      twisted = Math.max(twisted, await twistedPair());
    } else {
      twisted = Math.max(twisted, await twistedPair());
      torsion = Math.max(torsion, await torsionPair());
    }
  }
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
