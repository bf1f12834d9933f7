/**
 * Request parsing throughput, in process: torsion's `RequestParser` against
 * Node's own llhttp, reached through `process.binding('http_parser')` (the
 * `HTTPParser` that `node:http` drives; `internalBinding` is out of reach).
 *
 * Both sides do the same work per request: parse the head, produce the
 * method, target and header strings, and see the message complete. llhttp's
 * side is what `node:http`'s `parserOnHeadersComplete` receives (a flat
 * name/value array, from C++); torsion's is a `RequestHead` with a `Headers`.
 * Neither builds a request object on top. Workloads:
 * - a typical browser GET (9 header fields), one `execute` per request;
 * - 16 such GETs pipelined in one Buffer, one `execute` per batch;
 * - a POST with a 1 KiB body (Content-Length), one `execute` per request;
 * - a chunked POST (4 chunks of 256 bytes, a trailer), one `execute` per request.
 */

import { type ParserHandler, type RequestHead, RequestParser } from '../src/web/http/parser.js';
import { type BenchResult, bestOpsPerSecond } from './common.js';
import { type HTTPParserBinding, loadLlhttp } from './peers/llhttp.js';

const GET = Buffer.from(
  'GET /static/app.js?v=1234 HTTP/1.1\r\n' +
    'Host: www.example.com\r\n' +
    'User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n' +
    'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n' +
    'Accept-Language: en-US,en;q=0.5\r\n' +
    'Accept-Encoding: gzip, deflate, br\r\n' +
    'Referer: https://www.example.com/index.html\r\n' +
    'Connection: keep-alive\r\n' +
    'Cookie: session=0123456789abcdef; theme=dark\r\n' +
    'Cache-Control: max-age=0\r\n' +
    '\r\n',
  'latin1',
);

const PIPELINE = 16;
const BATCH = Buffer.concat(Array.from({ length: PIPELINE }, () => GET));

const POST = Buffer.concat([
  Buffer.from(
    'POST /api/items HTTP/1.1\r\nHost: api.example.com\r\nContent-Type: application/json\r\n' +
      'Content-Length: 1024\r\nConnection: keep-alive\r\n\r\n',
    'latin1',
  ),
  Buffer.alloc(1024, 0x61),
]);

const CHUNK = `100\r\n${'b'.repeat(256)}\r\n`;
const CHUNKED = Buffer.from(
  'POST /upload HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n' +
    `Content-Type: application/octet-stream\r\n\r\n${CHUNK}${CHUNK}${CHUNK}${CHUNK}0\r\nX-Checksum: abc\r\n\r\n`,
  'latin1',
);

// ---------------------------------------------------------------------- torsion

class Counter implements ParserHandler {
  requests = 0;
  completed = 0;
  bodyBytes = 0;
  found = 0;
  last: RequestHead | null = null;
  constructor(readonly lookup: string | null) {}
  onRequest(head: RequestHead): void {
    this.requests++;
    this.last = head;
    if (this.lookup !== null && head.headers.get(this.lookup) !== null) this.found++;
  }
  onBody(chunk: Buffer): void {
    this.bodyBytes += chunk.length;
  }
  onMessageComplete(): void {
    this.completed++;
  }
  onError(error: Error): void {
    throw error;
  }
}

function torsionLoop(input: Buffer, iterations: number, lookup: string | null): () => number {
  const counter = new Counter(lookup);
  const parser = new RequestParser(counter);
  return () => {
    for (let i = 0; i < iterations; i++) parser.execute(input);
    return counter.completed;
  };
}

// ---------------------------------------------------------------------- llhttp

interface LlhttpHead {
  method: string;
  url: string;
  headers: string[];
  versionMinor: number;
  shouldKeepAlive: boolean;
}

function llhttpLoop(
  binding: HTTPParserBinding,
  input: Buffer,
  iterations: number,
  lookup: string | null,
): () => number {
  const { HTTPParser, methods } = binding;
  const parser = new HTTPParser();
  parser.initialize(HTTPParser.REQUEST, {}, 0, 0);
  let completed = 0;
  let bodyBytes = 0;
  let found = 0;
  let last: LlhttpHead | null = null;
  // Head parts llhttp flushed early (node:http's parserOnHeaders).
  let pendingHeaders: string[] = [];
  let pendingUrl = '';
  // The same work node:http's parserOnHeadersComplete does before it builds
  // an IncomingMessage: method name, URL, the header array.
  parser[HTTPParser.kOnHeadersComplete] = (
    _major: number,
    versionMinor: number,
    headers: string[] | undefined,
    method: number,
    url: string,
    _status: number,
    _message: string,
    _upgrade: boolean,
    shouldKeepAlive: boolean,
  ): number => {
    if (headers === undefined) {
      headers = pendingHeaders;
      url = pendingUrl;
      pendingHeaders = [];
      pendingUrl = '';
    }
    last = { method: methods[method]!, url, headers, versionMinor, shouldKeepAlive };
    // A header looked up as IncomingMessage#headers would find it (it
    // lower-cases names as it goes).
    if (lookup !== null) {
      for (let i = 0; i < headers.length; i += 2) {
        if (headers[i]!.toLowerCase() === lookup) {
          found++;
          break;
        }
      }
    }
    return 0;
  };
  parser[HTTPParser.kOnHeaders] = (headers: string[], url: string): void => {
    pendingHeaders.push(...headers);
    pendingUrl += url;
  };
  parser[HTTPParser.kOnBody] = (b: Buffer): void => {
    bodyBytes += b.length;
  };
  let trailers: string[] = [];
  parser[HTTPParser.kOnMessageComplete] = (): void => {
    // What llhttp flushed after the head were trailers (node:http's
    // parserOnMessageComplete takes them the same way).
    if (pendingHeaders.length > 0) {
      trailers = pendingHeaders;
      pendingHeaders = [];
      pendingUrl = '';
    }
    completed++;
  };
  return () => {
    for (let i = 0; i < iterations; i++) {
      const r = parser.execute(input);
      if (typeof r !== 'number') throw r;
    }
    if (last === null || bodyBytes < 0 || found < 0 || trailers === null)
      throw new Error('llhttp delivered nothing');
    return completed;
  };
}

// ---------------------------------------------------------------------- run

interface Workload {
  name: string;
  input: Buffer;
  requestsPerInput: number;
  iterations: number;
  /** A header the handler looks up in each request (lower-case), if any. */
  lookup?: string;
}

const WORKLOADS: Workload[] = [
  { name: 'HTTP parse: GET, 9 headers', input: GET, requestsPerInput: 1, iterations: 200_000 },
  {
    // torsion cuts header strings only when one is looked up: this is the
    // cost when a handler does.
    name: 'HTTP parse: GET, 9 headers, 1 looked up',
    input: GET,
    requestsPerInput: 1,
    iterations: 200_000,
    lookup: 'user-agent',
  },
  {
    name: `HTTP parse: ${PIPELINE} pipelined GETs`,
    input: BATCH,
    requestsPerInput: PIPELINE,
    iterations: 20_000,
  },
  { name: 'HTTP parse: POST, 1 KiB body', input: POST, requestsPerInput: 1, iterations: 200_000 },
  {
    name: 'HTTP parse: chunked POST + trailer',
    input: CHUNKED,
    requestsPerInput: 1,
    iterations: 100_000,
  },
];

export async function run(): Promise<BenchResult[]> {
  const binding = loadLlhttp();
  if (binding === null)
    throw new Error("process.binding('http_parser') is unavailable: no llhttp to compare with");
  const results: BenchResult[] = [];
  for (const w of WORKLOADS) {
    const ops = w.iterations * w.requestsPerInput;
    const ours = torsionLoop(w.input, w.iterations, w.lookup ?? null);
    const theirs = llhttpLoop(binding, w.input, w.iterations, w.lookup ?? null);
    // Warm both up, then alternate rounds so neither gets a quieter machine.
    ours();
    theirs();
    let torsion = 0;
    let peer = 0;
    for (let round = 0; round < 3; round++) {
      torsion = Math.max(torsion, await bestOpsPerSecond(ops, ours, 3));
      peer = Math.max(peer, await bestOpsPerSecond(ops, theirs, 3));
    }
    results.push({
      name: w.name,
      torsion,
      peer,
      peerName: "llhttp (node's binding)",
      unit: 'req/s',
      higherIsBetter: true,
    });
  }
  return results;
}

// `tsx bench/http-parser.ts` runs it alone.
if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await run()) {
    console.log(
      `${r.name.padEnd(40)} torsion ${Math.round(r.torsion).toLocaleString('en-US').padStart(12)} req/s   ` +
        `llhttp ${Math.round(r.peer).toLocaleString('en-US').padStart(12)} req/s   ${(r.torsion / r.peer).toFixed(2)}x`,
    );
  }
}
