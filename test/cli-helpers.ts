/**
 * Test support (not a test file) for tests that run torsion as a child
 * process (`torsion web …`, `npx tsx examples/X.ts --port 0`) and talk to
 * servers over HTTP with `node:http`: spawning and stopping servers (every
 * child still running when the file's tests end is killed), one-shot
 * commands, a temporary directory for module fixtures, and one request.
 */

import assert from 'node:assert/strict';
import {
  type ChildProcess,
  type ChildProcessWithoutNullStreams,
  execFile,
  spawn,
} from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';

/** The repository's root directory. */
export const repo = fileURLToPath(new URL('..', import.meta.url));
/** The `torsion` command's script. */
export const bin = join(repo, 'bin/torsion.js');
/** A `--listen` endpoint on a free port of the loopback interface. */
export const LOCAL0 = 'tcp:0:interface=127.0.0.1';

const running = new Set<ChildProcess>();
after(() => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * A directory for the test's module fixtures, with a `package.json` of
 * `"type": "module"` (as in a user's ESM project); removed after the tests.
 */
export function tempModuleDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs `torsion ARGS` to completion (at most 30 s): its exit code and output. */
export function torsion(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { timeout: 30_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs `torsion web ARGS` and checks that it exits 2 with `message` and the usage on stderr. */
export async function assertUsageError(args: string[], message: RegExp): Promise<void> {
  const r = await torsion('web', ...args);
  assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
  assert.match(r.stderr, message, args.join(' '));
  assert.match(r.stderr, /Usage: torsion web/);
}

/** A server running in a child process. */
export interface ServerProcess {
  readonly child: ChildProcessWithoutNullStreams;
  /** Group 1 of each line that matched `ready`, in order (e.g. the addresses printed). */
  readonly addresses: string[];
  /** The port at the end of each of those (`NaN` for one without, e.g. a UNIX socket). */
  readonly ports: number[];
  /** The first of {@link ports}. */
  readonly port: number;
  stdout(): string;
  stderr(): string;
  /**
   * Sends `signal` (default SIGINT) and resolves with the exit code,
   * failing the test if the process was killed by a signal instead.
   */
  stop(signal?: NodeJS.Signals): Promise<number>;
}

/**
 * Spawns `node ARGV` (in the repository) and waits until its stdout has
 * `count` lines matching `ready` (whose group 1 is the address); fails the
 * test if it exits first.
 */
export async function spawnServer(
  argv: string[],
  ready: RegExp,
  count = 1,
): Promise<ServerProcess> {
  const child = spawn(process.execPath, argv, { stdio: ['pipe', 'pipe', 'pipe'], cwd: repo });
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  const exited = once(child, 'exit');
  const pattern = new RegExp(
    ready.source,
    ready.flags.includes('g') ? ready.flags : `${ready.flags}g`,
  );
  const lines = (): string[] => [...stdout.matchAll(pattern)].map((m) => m[1]!);
  while (lines().length < count) {
    await Promise.race([
      once(child.stdout, 'data'),
      exited.then(([code]) =>
        assert.fail(`${argv.join(' ')} exited ${String(code)} before listening: ${stderr}`),
      ),
    ]);
  }
  const addresses = lines();
  const ports = addresses.map((a) => Number(/:(\d+)\/?$/.exec(a)?.[1] ?? Number.NaN));
  return {
    child,
    addresses,
    ports,
    port: ports[0]!,
    stdout: () => stdout,
    stderr: () => stderr,
    async stop(signal: NodeJS.Signals = 'SIGINT') {
      child.kill(signal);
      const [code, sig] = await exited;
      running.delete(child);
      assert.equal(sig, null, `killed by ${String(sig)}: ${stderr}`);
      return code as number;
    },
  };
}

/** `torsion web ARGS`, once it printed `count` "listening on ADDRESS" lines. */
export function startWeb(args: string[], count = 1): Promise<ServerProcess> {
  return spawnServer([bin, 'web', ...args], /^listening on (\S+)$/m, count);
}

/** `examples/NAME --port 0 ARGS` run with tsx, once it printed its `http://` address. */
export function runExample(name: string, args: string[] = []): Promise<ServerProcess> {
  return spawnServer(
    ['--import', 'tsx', join(repo, 'examples', name), '--port', '0', ...args],
    /^listening on (http:\/\/\S+)$/m,
  );
}

/** A response read whole by {@link request}. */
export interface Reply {
  status: number;
  statusMessage: string;
  headers: http.IncomingHttpHeaders;
  /** The header lines as received: name, value, name, value… */
  rawHeaders: string[];
  body: Buffer;
}

/**
 * One request with `node:http` to 127.0.0.1 (a port) or a UNIX socket, with
 * no keep-alive agent (nothing is left open); resolves with the whole reply.
 */
export function request(
  target: number | { port: number } | { socketPath: string },
  method: string,
  path: string,
  body?: string | Buffer,
  headers: Record<string, string> = {},
): Promise<Reply> {
  const where = typeof target === 'number' ? { port: target } : target;
  return new Promise((resolve, reject) => {
    const req = http.request(
      { ...where, host: '127.0.0.1', method, path, headers, agent: false },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () =>
          resolve({
            status: res.statusCode!,
            statusMessage: res.statusMessage!,
            headers: res.headers,
            rawHeaders: res.rawHeaders,
            body: Buffer.concat(parts),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
