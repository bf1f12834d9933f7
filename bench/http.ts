/**
 * HTTP: torsion's `examples/hello.ts` (through a `Site`) against a
 * `node:http` hello with the same response, and against Twisted web, loaded
 * by `wrk`; and server memory per idle keep-alive connection.
 *
 * - Throughput: `wrk -t1 -c50` for 5 s, keep-alive, and pipelined ×16 (a
 *   wrk Lua script sending 16 requests per write). The servers run as child
 *   processes pinned to CPU 0 and wrk to CPU 1 (`taskset`, when there are
 *   two CPUs or more). Rounds alternate which server goes first; the best
 *   round of each counts. `wrk` is installed with apt if missing.
 * - Also reported, without a target: requests per second of *server* CPU
 *   time (from `/proc/PID/stat`), since on a small machine one wrk thread can
 *   be the bottleneck for the fastest server, which then shows less than its
 *   real advantage.
 * - Twisted: Debian's `/usr/bin/python3` with python3-twisted (installed
 *   with apt if missing), a `Resource` answering the same bytes; access
 *   logging is off on every side.
 * - Memory: 10,000 connections each make one request and stay open
 *   (keep-alive); the server's RSS after a full GC, minus its RSS before,
 *   per connection. node:http's `keepAliveTimeout` is raised so it keeps
 *   them (its default 5 s would close them).
 */

import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type BenchResult,
  type BenchServer,
  bestOfAlternating,
  cpuSeconds,
  maxOfEach,
  pinned,
  startServer as startChild,
  stopServer,
} from './common.js';

const PYTHON = '/usr/bin/python3';
const DURATION = 5;
const ROUNDS = 3;
const CONNECTIONS = 50;
const IDLE_CONNECTIONS = 10_000;

// ---------------------------------------------------------------------- the servers

/** Each server prints `listening on tcp:HOST:PORT`; on a `mem` line on stdin it GCs and prints `mem RSS`. */
const TORSION_SERVER = `
import root from './examples/hello.ts';
import { Site } from './src/web/site.ts';
import { listenTCP } from './src/reactor/tcp.ts';
import { reactor } from './src/reactor/reactor.ts';
const site = new Site(root);
const port = listenTCP(reactor, 0, site, { interface: '127.0.0.1', backlog: 4096 });
console.log('listening on tcp:127.0.0.1:' + port.getHost().port);
process.stdin.on('data', (d) => {
  if (!String(d).includes('mem')) return;
  for (let i = 0; i < 4; i++) globalThis.gc();
  setTimeout(() => { globalThis.gc(); console.log('mem ' + process.memoryUsage().rss); }, 200);
});
`;

const NODE_SERVER = `
import http from 'node:http';
const body = Buffer.from('Hello, world!\\n');
const server = http.createServer((req, res) => {
  if (req.url === '/') {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
    res.end(body);
  } else {
    res.statusCode = 404;
    res.end();
  }
});
server.keepAliveTimeout = 120000;
server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () =>
  console.log('listening on tcp:127.0.0.1:' + server.address().port));
process.stdin.on('data', (d) => {
  if (!String(d).includes('mem')) return;
  for (let i = 0; i < 4; i++) globalThis.gc();
  setTimeout(() => { globalThis.gc(); console.log('mem ' + process.memoryUsage().rss); }, 200);
});
`;

const TWISTED_SERVER = `
import sys
from twisted.internet import reactor
from twisted.web import resource, server

class Hello(resource.Resource):
    isLeaf = True
    def render_GET(self, request):
        if request.path != b'/':
            request.setResponseCode(404)
            return b''
        request.setHeader(b'Content-Type', b'text/plain')
        return b'Hello, world!\\n'

site = server.Site(Hello())
site.log = lambda request: None
port = reactor.listenTCP(0, site, interface='127.0.0.1', backlog=4096)
print('listening on tcp:127.0.0.1:%d' % port.getHost().port, flush=True)
reactor.run()
`;

/** Starts a server pinned to CPU 0, its stdin piped (for `mem`), Python's path reset. */
function startServer(name: string, argv: string[]): Promise<BenchServer> {
  return startChild(name, pinned(0, argv), {
    stdin: 'pipe',
    env: { ...process.env, PYTHONPATH: '' },
  });
}

/** The server's RSS after a full GC (it prints `mem RSS` when told `mem`). */
async function rss(server: BenchServer): Promise<number> {
  const before = server.lines.length;
  server.child.stdin!.write('mem\n');
  for (let i = 0; i < 500; i++) {
    const line = server.lines.slice(before).find((l) => l.startsWith('mem '));
    if (line !== undefined) return Number(line.slice(4));
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${server.name}: no memory figure`);
}

// ---------------------------------------------------------------------- wrk

function ensureTools(): void {
  if (spawnSync('wrk', ['--version']).error !== undefined) {
    spawnSync('apt-get', ['install', '-y', 'wrk'], { stdio: 'ignore' });
    if (spawnSync('wrk', ['--version']).error !== undefined) {
      throw new Error('the HTTP bench needs wrk: apt-get install -y wrk');
    }
  }
}

function hasTwisted(): boolean {
  const check = (): boolean =>
    existsSync(PYTHON) &&
    spawnSync(PYTHON, ['-c', 'import twisted.web'], { env: { ...process.env, PYTHONPATH: '' } })
      .status === 0;
  if (check()) return true;
  spawnSync('apt-get', ['install', '-y', 'python3-twisted'], { stdio: 'ignore' });
  return check();
}

interface Load {
  /** Requests per second, as wrk reports. */
  rps: number;
  /** Requests per second of server CPU time. */
  perCpu: number;
}

/** One wrk run against `server`; with `script`, the Lua script path. */
function wrk(server: BenchServer, script: string | null, duration = DURATION): Load {
  const args = ['-t1', `-c${CONNECTIONS}`, `-d${duration}s`];
  if (script !== null) args.push('-s', script);
  args.push(`http://127.0.0.1:${server.port}/`);
  const before = cpuSeconds(server.child.pid!);
  const [command, ...rest] = pinned(1, ['wrk', ...args]);
  const run = spawnSync(command!, rest, { encoding: 'utf8' });
  const used = cpuSeconds(server.child.pid!) - before;
  const m = /Requests\/sec:\s+([\d.]+)/.exec(run.stdout);
  if (m === null) throw new Error(`wrk failed against ${server.name}: ${run.stdout}${run.stderr}`);
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(run.stdout);
  if (errors !== null) throw new Error(`${server.name} answered ${errors[1]} errors under load`);
  const rps = Number(m[1]);
  return { rps, perCpu: used > 0 ? (rps * duration) / used : 0 };
}

/** Best of `ROUNDS` rounds for each server, alternating which goes first. */
function compare(a: BenchServer, b: BenchServer, script: string | null): Promise<[Load, Load]> {
  wrk(a, script, 2); // warm-up (JIT)
  wrk(b, script, 2);
  return bestOfAlternating(
    ROUNDS,
    () => wrk(a, script),
    () => wrk(b, script),
    maxOfEach,
  );
}

// ---------------------------------------------------------------------- idle connections

/** Opens `count` connections to `port`, each after one request answered; returns them. */
async function idleConnections(port: number, count: number): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  const request = Buffer.from('GET / HTTP/1.1\r\nHost: bench\r\n\r\n');
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1' });
      sockets.push(socket);
      let got = '';
      const onData = (d: Buffer): void => {
        got += d.toString('latin1');
        if (got.endsWith('Hello, world!\n')) {
          socket.off('data', onData);
          resolve();
        }
      };
      socket.on('data', onData);
      socket.once('error', reject);
      socket.write(request);
    });
  for (let i = 0; i < count; i += 250) {
    await Promise.all(Array.from({ length: Math.min(250, count - i) }, one));
  }
  return sockets;
}

async function memoryPerConnection(server: BenchServer): Promise<number> {
  // Warm up the paths (and the heap) with a first, closed batch.
  const warm = await idleConnections(server.port, 500);
  for (const s of warm) s.destroy();
  await new Promise((r) => setTimeout(r, 500));
  const before = await rss(server);
  const sockets = await idleConnections(server.port, IDLE_CONNECTIONS);
  const after = await rss(server);
  for (const s of sockets) s.destroy();
  await Promise.all(sockets.map((s) => (s.destroyed ? null : once(s, 'close'))));
  return (after - before) / IDLE_CONNECTIONS;
}

// ---------------------------------------------------------------------- run

export async function run(): Promise<BenchResult[]> {
  ensureTools();
  const dir = mkdtempSync(join(tmpdir(), 'torsion-bench-http-'));
  const pipeline = join(dir, 'pipeline.lua');
  writeFileSync(
    pipeline,
    `init = function(args)
  local r = {}
  for i = 1, 16 do r[i] = wrk.format(nil, "/") end
  req = table.concat(r)
end
request = function() return req end
`,
  );
  const torsion = await startServer('torsion', [
    'node',
    '--expose-gc',
    '--import',
    'tsx',
    '--input-type=module',
    '-e',
    TORSION_SERVER,
  ]);
  const results: BenchResult[] = [];
  try {
    const node = await startServer('node:http', [
      'node',
      '--expose-gc',
      '--input-type=module',
      '-e',
      NODE_SERVER,
    ]);
    try {
      const [tk, nk] = await compare(torsion, node, null);
      const [tp, np] = await compare(torsion, node, pipeline);
      results.push(
        {
          name: 'HTTP hello, keep-alive, wrk -c50',
          torsion: tk.rps,
          peer: nk.rps,
          peerName: 'node:http',
          unit: 'req/s',
          higherIsBetter: true,
          target: 1.4,
        },
        {
          name: 'HTTP hello, pipelined x16, wrk -c50',
          torsion: tp.rps,
          peer: np.rps,
          peerName: 'node:http',
          unit: 'req/s',
          higherIsBetter: true,
          target: 5,
        },
        {
          name: 'HTTP hello, keep-alive, per server CPU s',
          torsion: tk.perCpu,
          peer: nk.perCpu,
          peerName: 'node:http',
          unit: 'req/cpu-s',
          higherIsBetter: true,
        },
        {
          name: 'HTTP hello, pipelined x16, per server CPU s',
          torsion: tp.perCpu,
          peer: np.perCpu,
          peerName: 'node:http',
          unit: 'req/cpu-s',
          higherIsBetter: true,
        },
      );
      if (hasTwisted()) {
        const twisted = await startServer('Twisted web', [PYTHON, '-c', TWISTED_SERVER]);
        try {
          const [tt, tw] = await compare(torsion, twisted, null);
          results.push({
            name: 'HTTP hello, keep-alive, wrk -c50',
            torsion: tt.rps,
            peer: tw.rps,
            peerName: 'Twisted web (python3)',
            unit: 'req/s',
            higherIsBetter: true,
            target: 5,
          });
        } finally {
          await stopServer(twisted);
        }
      } else {
        console.log('HTTP bench: no Twisted under /usr/bin/python3 (python3-twisted); skipped');
      }
      // Last: 20,000 sockets torn down would disturb the throughput runs.
      const tm = await memoryPerConnection(torsion);
      const nm = await memoryPerConnection(node);
      results.push({
        name: 'memory per idle keep-alive conn, 10k (<= 6 KB)',
        torsion: tm,
        peer: nm,
        peerName: 'node:http',
        unit: 'bytes',
        higherIsBetter: false,
        // The target is absolute: at most 6 KB per connection (node:http
        // was said to use ~10 KB). As a ratio: peer/torsion >= peer/6 KB.
        target: nm / (6 * 1024),
      });
    } finally {
      await stopServer(node);
    }
  } finally {
    await stopServer(torsion);
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}
