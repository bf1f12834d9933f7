/**
 * Runs a child process and streams its output line by line, prefixed by
 * the stream it came from, then reports how it ended.
 *
 *     npx tsx examples/process.ts                 # a small node script that prints over time
 *     npx tsx examples/process.ts -- ls -la /tmp  # any command (no shell)
 *
 * The example's exit code is the child's (1 if it was killed by a signal or
 * could not be started).
 */

import { ProcessProtocol } from '../src/protocols/process-protocol.js';
import type { Failure } from '../src/reactor/failure.js';
import { ProcessDone, ProcessSpawnError, ProcessTerminated } from '../src/reactor/process.js';
import { reactor } from '../src/reactor/reactor.js';

/** Splits a byte stream into lines (LF or CRLF) without copying the bytes it scans. */
class LineSplitter {
  #pending: Buffer | null = null;

  constructor(readonly onLine: (line: string) => void) {}

  feed(data: Buffer): void {
    let buffer = this.#pending === null ? data : Buffer.concat([this.#pending, data]);
    let start = 0;
    for (let nl = buffer.indexOf(10); nl !== -1; nl = buffer.indexOf(10, start)) {
      const end = nl > start && buffer[nl - 1] === 13 ? nl - 1 : nl;
      this.onLine(buffer.toString('utf8', start, end));
      start = nl + 1;
    }
    buffer = buffer.subarray(start);
    this.#pending = buffer.length > 0 ? buffer : null;
  }

  /** The stream ended: a last line without a newline is still a line. */
  end(): void {
    if (this.#pending !== null) this.onLine(this.#pending.toString('utf8'));
    this.#pending = null;
  }
}

/** Prints each line of the child's stdout and stderr with a prefix. */
class PrefixedOutput extends ProcessProtocol {
  readonly #out = new LineSplitter((line) => console.log(`[out] ${line}`));
  readonly #err = new LineSplitter((line) => console.log(`[err] ${line}`));

  override connectionMade(): void {
    console.log(`started pid ${this.transport.pid ?? '(none)'}`);
    // Our child reads nothing: close its stdin so it sees end-of-file.
    this.transport.closeStdin();
  }

  override outReceived(data: Buffer): void {
    this.#out.feed(data);
  }

  override errReceived(data: Buffer): void {
    this.#err.feed(data);
  }

  override outConnectionLost(): void {
    this.#out.end();
  }

  override errConnectionLost(): void {
    this.#err.end();
  }

  override processEnded(reason: Failure): void {
    const error = reason.value;
    if (error instanceof ProcessDone) {
      console.log('exited with code 0');
      process.exitCode = 0;
    } else if (error instanceof ProcessTerminated) {
      console.log(
        error.signal === null
          ? `exited with code ${error.exitCode}`
          : `killed by signal ${error.signal}`,
      );
      process.exitCode = error.exitCode ?? 1;
    } else if (error instanceof ProcessSpawnError) {
      console.log(`could not start: ${error.message}`);
      process.exitCode = 1;
    } else {
      console.log(`ended: ${error.message}`);
      process.exitCode = 1;
    }
  }
}

const DEMO = `
let n = 0;
const timer = setInterval(() => {
  n += 1;
  process.stdout.write('line ' + n + ' of 5' + (n === 3 ? '\\npartial ' : '\\n'));
  if (n === 2) process.stderr.write('a warning on stderr\\n');
  if (n === 5) { clearInterval(timer); process.stdout.write('last line without newline'); }
}, 50);
`;

function main(): void {
  const dashes = process.argv.indexOf('--');
  const command = dashes === -1 ? [] : process.argv.slice(dashes + 1);
  if (command.length > 0) {
    // args[0] is the child's argv[0], as in Twisted.
    reactor.spawnProcess(new PrefixedOutput(), command[0], command);
  } else {
    reactor.spawnProcess(new PrefixedOutput(), process.execPath, ['node', '-e', DEMO]);
  }
}

main();
