/**
 * The HTTP/1.1 request parser, in memory: every valid form parsed the same
 * whether fed whole, byte by byte or split at any point; every strictness
 * rule (status, code, and nothing parsed after the bad request, smuggling
 * vectors included); limits at their boundaries; pause/resume; finishing.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type HTTPParserBinding, loadLlhttp } from '../bench/peers/llhttp.js';
import { InvalidArgumentError } from '../src/reactor/errors.js';
import {
  HTTPParseError,
  PARSE_ERRORS,
  type ParseErrorKind,
  ParserStateError,
} from '../src/web/http/errors.js';
import type { Headers } from '../src/web/http/headers.js';
import {
  type ParserHandler,
  type ParserOptions,
  type RequestHead,
  RequestParser,
} from '../src/web/http/parser.js';

// ---------------------------------------------------------------------- harness

type Event =
  | { type: 'request'; head: HeadSummary }
  | { type: 'body'; data: string }
  | { type: 'complete'; trailers: [string, string][] | null }
  | { type: 'error'; status: number; code: string };

interface HeadSummary {
  method: string;
  target: string;
  targetForm: string;
  version: string;
  headers: [string, string][];
  contentLength: number | null;
  chunked: boolean;
  keepAlive: boolean;
  expectContinue: boolean;
  expectationFailed: boolean;
  upgrade: boolean;
}

function summary(head: RequestHead): HeadSummary {
  return {
    method: head.method,
    target: head.target,
    targetForm: head.targetForm,
    version: head.version,
    headers: [...head.headers],
    contentLength: head.contentLength,
    chunked: head.chunked,
    keepAlive: head.keepAlive,
    expectContinue: head.expectContinue,
    expectationFailed: head.expectationFailed,
    upgrade: head.upgrade,
  };
}

/** Records events; consecutive body pieces are merged so any split compares equal. */
class Recorder implements ParserHandler {
  events: Event[] = [];
  heads: RequestHead[] = [];
  onRequest(head: RequestHead): void {
    this.heads.push(head);
    this.events.push({ type: 'request', head: summary(head) });
  }
  onBody(chunk: Buffer): void {
    assert.ok(chunk.length > 0, 'onBody with an empty chunk');
    const last = this.events.at(-1);
    if (last?.type === 'body') last.data += chunk.toString('latin1');
    else this.events.push({ type: 'body', data: chunk.toString('latin1') });
  }
  onMessageComplete(trailers: Headers | null): void {
    this.events.push({ type: 'complete', trailers: trailers === null ? null : [...trailers] });
  }
  onError(error: HTTPParseError): void {
    assert.ok(error instanceof HTTPParseError);
    this.events.push({ type: 'error', status: error.status, code: error.code });
  }
}

/**
 * Feeds `chunks` in order as a channel that always wants more would: when
 * the parser pauses itself (CONNECT, upgrade) it resumes and feeds the rest.
 */
function feed(
  chunks: Buffer[],
  options?: ParserOptions,
): { events: Event[]; parser: RequestParser } {
  const recorder = new Recorder();
  const parser = new RequestParser(recorder, options);
  for (const chunk of chunks) {
    let rest = chunk;
    for (let guard = 0; rest.length > 0; guard++) {
      assert.ok(guard < 1000, 'feed loop did not progress');
      const n = parser.execute(rest);
      assert.ok(n >= 0 && n <= rest.length);
      rest = rest.subarray(n);
      if (rest.length > 0) {
        assert.ok(parser.paused, 'execute left bytes without being paused');
        parser.resume();
      }
    }
  }
  return { events: recorder.events, parser };
}

const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Ways of cutting `input`: whole, byte by byte, at each split point, and some three-piece splits. */
function splits(input: Buffer): Buffer[][] {
  const out: Buffer[][] = [[input]];
  out.push(Array.from({ length: input.length }, (_, i) => input.subarray(i, i + 1)));
  // Every two-piece split; above 2 KiB (the limit tests), 512 spread evenly.
  const every = input.length <= 2048 ? 1 : Math.ceil(input.length / 512);
  for (let i = 1; i < input.length; i += every) out.push([input.subarray(0, i), input.subarray(i)]);
  const step = Math.max(1, Math.floor(input.length / 12));
  for (let i = 1; i < input.length; i += step) {
    for (let j = i + 1; j < input.length; j += step) {
      out.push([input.subarray(0, i), input.subarray(i, j), input.subarray(j)]);
    }
  }
  return out;
}

/** Parses `input` every way and checks each gives the same events as the whole; returns them. */
function parseEveryWay(input: string | Buffer, options?: ParserOptions): Event[] {
  const buf = typeof input === 'string' ? bytes(input) : input;
  const whole = feed([buf], options).events;
  for (const pieces of splits(buf)) {
    const got = feed(pieces, options).events;
    assert.deepEqual(got, whole, `split at ${pieces.map((p) => p.length).join('+')}`);
  }
  return whole;
}

function head(partial: Partial<HeadSummary> & { headers: [string, string][] }): HeadSummary {
  return {
    method: 'GET',
    target: '/',
    targetForm: 'origin',
    version: '1.1',
    contentLength: null,
    chunked: false,
    keepAlive: true,
    expectContinue: false,
    expectationFailed: false,
    upgrade: false,
    ...partial,
  };
}

const req = (h: HeadSummary): Event => ({ type: 'request', head: h });
const body = (data: string): Event => ({ type: 'body', data });
const done = (trailers: [string, string][] | null = null): Event => ({
  type: 'complete',
  trailers,
});

const NEXT = 'GET /next HTTP/1.1\r\nHost: a\r\n\r\n';

// ---------------------------------------------------------------------- valid forms

describe('valid requests, fed whole, byte by byte and at every split', () => {
  const cases: [string, string | Buffer, Event[], ParserOptions?][] = [
    [
      'GET without a body',
      'GET / HTTP/1.1\r\nHost: example.com\r\n\r\n',
      [req(head({ headers: [['Host', 'example.com']] })), done()],
    ],
    [
      'field values: OWS trimmed, inner spaces kept, empty value, obs-text, HTAB',
      'GET /a?b=c HTTP/1.1\r\nHost: h\r\nX-A:\t  one  two \t\r\nX-Empty:\r\nX-Blank:   \r\nX-Latin: caf\xe9\r\n' +
        'X-Tab: a\tb\r\n\r\n',
      [
        req(
          head({
            target: '/a?b=c',
            headers: [
              ['Host', 'h'],
              ['X-A', 'one  two'],
              ['X-Empty', ''],
              ['X-Blank', ''],
              ['X-Latin', 'caf\xe9'],
              ['X-Tab', 'a\tb'],
            ],
          }),
        ),
        done(),
      ],
    ],
    [
      'POST with Content-Length',
      'POST /submit HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world',
      [
        req(
          head({
            method: 'POST',
            target: '/submit',
            headers: [
              ['Host', 'h'],
              ['Content-Length', '11'],
            ],
            contentLength: 11,
          }),
        ),
        body('hello world'),
        done(),
      ],
    ],
    [
      'Content-Length: 0',
      'PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n',
      [
        req(
          head({
            method: 'PUT',
            target: '/x',
            headers: [
              ['Host', 'h'],
              ['Content-Length', '0'],
            ],
            contentLength: 0,
          }),
        ),
        done(),
      ],
    ],
    [
      'Content-Length with leading zeros, a list of equal values and a repeat',
      'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 003, 3 ,3\r\ncontent-length: 3\r\n\r\nabc',
      [
        req(
          head({
            method: 'POST',
            headers: [
              ['Host', 'h'],
              ['Content-Length', '003, 3 ,3'],
              ['content-length', '3'],
            ],
            contentLength: 3,
          }),
        ),
        body('abc'),
        done(),
      ],
    ],
    [
      'chunked with extensions and trailers',
      'POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n' +
        '5;name=value;q="a b"\r\nhello\r\n6 ; x\r\n world\r\nA\r\n0123456789\r\n0;last\r\n' +
        'X-Trailer: t1\r\nX-Other:  t2 \r\n\r\n',
      [
        req(
          head({
            method: 'POST',
            target: '/up',
            headers: [
              ['Host', 'h'],
              ['Transfer-Encoding', 'chunked'],
            ],
            chunked: true,
          }),
        ),
        body('hello world0123456789'),
        done([
          ['X-Trailer', 't1'],
          ['X-Other', 't2'],
        ]),
      ],
    ],
    [
      'chunked without trailers, hex in both cases, leading zeros, TE case-insensitive',
      'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ChUnKeD\r\n\r\n000a\r\n0123456789\r\nb\r\nabcdefghijk\r\n0\r\n\r\n',
      [
        req(
          head({
            method: 'POST',
            headers: [
              ['Host', 'h'],
              ['Transfer-Encoding', 'ChUnKeD'],
            ],
            chunked: true,
          }),
        ),
        body('0123456789abcdefghijk'),
        done(),
      ],
    ],
    [
      'Transfer-Encoding with empty list elements',
      'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: , chunked ,\r\n\r\n1\r\nx\r\n0\r\n\r\n',
      [
        req(
          head({
            method: 'POST',
            headers: [
              ['Host', 'h'],
              ['Transfer-Encoding', ', chunked ,'],
            ],
            chunked: true,
          }),
        ),
        body('x'),
        done(),
      ],
    ],
    [
      'pipelined requests in one buffer (GET, POST, chunked, GET)',
      'GET /1 HTTP/1.1\r\nHost: h\r\n\r\n' +
        'POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nabcd' +
        'POST /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nef\r\n0\r\n\r\n' +
        'GET /4 HTTP/1.1\r\nHost: h\r\n\r\n',
      [
        req(head({ target: '/1', headers: [['Host', 'h']] })),
        done(),
        req(
          head({
            method: 'POST',
            target: '/2',
            headers: [
              ['Host', 'h'],
              ['Content-Length', '4'],
            ],
            contentLength: 4,
          }),
        ),
        body('abcd'),
        done(),
        req(
          head({
            method: 'POST',
            target: '/3',
            headers: [
              ['Host', 'h'],
              ['Transfer-Encoding', 'chunked'],
            ],
            chunked: true,
          }),
        ),
        body('ef'),
        done(),
        req(head({ target: '/4', headers: [['Host', 'h']] })),
        done(),
      ],
    ],
    [
      'a request inside a body is body (no smuggling through Content-Length)',
      `POST / HTTP/1.1\r\nHost: h\r\nContent-Length: ${NEXT.length}\r\n\r\n${NEXT}`,
      [
        req(
          head({
            method: 'POST',
            headers: [
              ['Host', 'h'],
              ['Content-Length', String(NEXT.length)],
            ],
            contentLength: NEXT.length,
          }),
        ),
        body(NEXT),
        done(),
      ],
    ],
    [
      'absolute-form',
      'GET http://example.com:8080/path?q=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n',
      [
        req(
          head({
            target: 'http://example.com:8080/path?q=1',
            targetForm: 'absolute',
            headers: [['Host', 'example.com:8080']],
          }),
        ),
        done(),
      ],
    ],
    [
      'OPTIONS *',
      'OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n',
      [
        req(
          head({
            method: 'OPTIONS',
            target: '*',
            targetForm: 'asterisk',
            headers: [['Host', 'h']],
          }),
        ),
        done(),
      ],
    ],
    [
      'CONNECT authority-form (the parser pauses after it; the feeder resumes)',
      `CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n${NEXT}`,
      [
        req(
          head({
            method: 'CONNECT',
            target: 'example.com:443',
            targetForm: 'authority',
            headers: [['Host', 'example.com:443']],
          }),
        ),
        done(),
        req(head({ target: '/next', headers: [['Host', 'a']] })),
        done(),
      ],
    ],
    [
      'CONNECT to an IPv6 literal',
      'CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\nContent-Length: 0\r\n\r\n',
      [
        req(
          head({
            method: 'CONNECT',
            target: '[::1]:8443',
            targetForm: 'authority',
            headers: [
              ['Host', '[::1]:8443'],
              ['Content-Length', '0'],
            ],
            contentLength: 0,
          }),
        ),
        done(),
      ],
    ],
    [
      'HTTP/1.0 without Host and without keep-alive (nothing after it is parsed)',
      `GET /old HTTP/1.0\r\nUser-Agent: x\r\n\r\n${NEXT}`,
      [
        req(
          head({
            target: '/old',
            version: '1.0',
            keepAlive: false,
            headers: [['User-Agent', 'x']],
          }),
        ),
        done(),
      ],
    ],
    [
      'HTTP/1.0 with Connection: keep-alive',
      `GET /old HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n${NEXT}`,
      [
        req(
          head({
            target: '/old',
            version: '1.0',
            keepAlive: true,
            headers: [['Connection', 'Keep-Alive']],
          }),
        ),
        done(),
        req(head({ target: '/next', headers: [['Host', 'a']] })),
        done(),
      ],
    ],
    [
      'HTTP/1.0 with keep-alive and close: close wins',
      `GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n${NEXT}`,
      [
        req(
          head({
            version: '1.0',
            keepAlive: false,
            headers: [['Connection', 'keep-alive, close']],
          }),
        ),
        done(),
      ],
    ],
    [
      'HTTP/1.1 Connection: close (tokens in a list, any case)',
      `GET / HTTP/1.1\r\nHost: h\r\nConnection: foo ,  CLOSE\r\n\r\n${NEXT}`,
      [
        req(
          head({
            keepAlive: false,
            headers: [
              ['Host', 'h'],
              ['Connection', 'foo ,  CLOSE'],
            ],
          }),
        ),
        done(),
      ],
    ],
    [
      'a token that merely contains "close" is not close',
      'GET / HTTP/1.1\r\nHost: h\r\nConnection: closed, xclose\r\n\r\n',
      [
        req(
          head({
            keepAlive: true,
            headers: [
              ['Host', 'h'],
              ['Connection', 'closed, xclose'],
            ],
          }),
        ),
        done(),
      ],
    ],
    [
      'leading empty lines (CRLF and LF) are ignored',
      '\r\n\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n',
      [
        req(head({ headers: [['Host', 'h']] })),
        done(),
        req(head({ target: '/2', headers: [['Host', 'h']] })),
        done(),
      ],
    ],
    [
      'bare LF line endings in the head',
      'GET / HTTP/1.1\nHost: h\nX-A: b\r\n\n',
      [
        req(
          head({
            headers: [
              ['Host', 'h'],
              ['X-A', 'b'],
            ],
          }),
        ),
        done(),
      ],
    ],
    [
      'HTTP/1.2 is processed as HTTP/1.1',
      'GET / HTTP/1.2\r\nHost: h\r\n\r\n',
      [req(head({ headers: [['Host', 'h']] })), done()],
    ],
    [
      'upgrade: Upgrade header and the upgrade connection option',
      `GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n${NEXT}`,
      [
        req(
          head({
            target: '/ws',
            upgrade: true,
            headers: [
              ['Host', 'h'],
              ['Connection', 'keep-alive, Upgrade'],
              ['Upgrade', 'websocket'],
            ],
          }),
        ),
        done(),
        req(head({ target: '/next', headers: [['Host', 'a']] })),
        done(),
      ],
    ],
    [
      'Upgrade without the connection option is no upgrade',
      'GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n',
      [
        req(
          head({
            headers: [
              ['Host', 'h'],
              ['Upgrade', 'websocket'],
            ],
          }),
        ),
        done(),
      ],
    ],
    [
      'Upgrade in HTTP/1.0 is ignored',
      'GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n',
      [
        req(
          head({
            version: '1.0',
            keepAlive: false,
            headers: [
              ['Connection', 'upgrade'],
              ['Upgrade', 'websocket'],
            ],
          }),
        ),
        done(),
      ],
    ],
    [
      'Expect: 100-continue (any case)',
      'POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nok',
      [
        req(
          head({
            method: 'POST',
            expectContinue: true,
            contentLength: 2,
            headers: [
              ['Host', 'h'],
              ['Expect', '100-Continue'],
              ['Content-Length', '2'],
            ],
          }),
        ),
        body('ok'),
        done(),
      ],
    ],
    [
      'Expect in HTTP/1.0 is ignored',
      'GET / HTTP/1.0\r\nConnection: keep-alive\r\nExpect: foo\r\n\r\n' +
        'GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n',
      [
        req(
          head({
            version: '1.0',
            headers: [
              ['Connection', 'keep-alive'],
              ['Expect', 'foo'],
            ],
          }),
        ),
        done(),
        req(head({ version: '1.0', keepAlive: false, headers: [['Expect', '100-continue']] })),
        done(),
      ],
    ],
    [
      'Expect: other members are an expectation that failed (with or without 100-continue)',
      'GET /a HTTP/1.1\r\nHost: h\r\nExpect: foo\r\n\r\n' +
        'GET /b HTTP/1.1\r\nHost: h\r\nExpect: 100-CONTINUE , x=1\r\n\r\n' +
        'GET /c HTTP/1.1\r\nHost: h\r\nExpect: 100-continue;p=1\r\n\r\n' +
        'GET /d HTTP/1.1\r\nHost: h\r\nExpect: ,\t, 100-continue ,\r\nExpect:\r\n\r\n',
      [
        req(
          head({
            target: '/a',
            expectationFailed: true,
            headers: [
              ['Host', 'h'],
              ['Expect', 'foo'],
            ],
          }),
        ),
        done(),
        req(
          head({
            target: '/b',
            expectContinue: true,
            expectationFailed: true,
            headers: [
              ['Host', 'h'],
              ['Expect', '100-CONTINUE , x=1'],
            ],
          }),
        ),
        done(),
        req(
          head({
            target: '/c',
            expectationFailed: true,
            headers: [
              ['Host', 'h'],
              ['Expect', '100-continue;p=1'],
            ],
          }),
        ),
        done(),
        req(
          head({
            target: '/d',
            expectContinue: true,
            headers: [
              ['Host', 'h'],
              ['Expect', ',\t, 100-continue ,'],
              ['Expect', ''],
            ],
          }),
        ),
        done(),
      ],
    ],
    [
      'Host forms: IPv6 with port, empty, empty port, percent-encoded, IPv4, IPvFuture, IPv4-mapped',
      'GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\nGET / HTTP/1.1\r\nHost:\r\n\r\n' +
        'GET / HTTP/1.1\r\nHost: h:\r\n\r\nGET / HTTP/1.1\r\nHost: %41b.example\r\n\r\n' +
        'GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\nGET / HTTP/1.1\r\nHost: [v1.fe:x]\r\n\r\n' +
        'GET / HTTP/1.1\r\nHost: [::ffff:10.0.0.1]\r\n\r\n',
      [
        req(head({ headers: [['Host', '[2001:db8::1]:80']] })),
        done(),
        req(head({ headers: [['Host', '']] })),
        done(),
        req(head({ headers: [['Host', 'h:']] })),
        done(),
        req(head({ headers: [['Host', '%41b.example']] })),
        done(),
        req(head({ headers: [['Host', '127.0.0.1:8080']] })),
        done(),
        req(head({ headers: [['Host', '[v1.fe:x]']] })),
        done(),
        req(head({ headers: [['Host', '[::ffff:10.0.0.1]']] })),
        done(),
      ],
    ],
    [
      'extension methods and every tchar in a field name',
      "M-SEARCH /x HTTP/1.1\r\nHost: h\r\n!#$%&'*+-.^_`|~09azAZ: v\r\n\r\nget /lower HTTP/1.1\r\nHost: h\r\n\r\n",
      [
        req(
          head({
            method: 'M-SEARCH',
            target: '/x',
            headers: [
              ['Host', 'h'],
              ["!#$%&'*+-.^_`|~09azAZ", 'v'],
            ],
          }),
        ),
        done(),
        req(head({ method: 'get', target: '/lower', headers: [['Host', 'h']] })),
        done(),
      ],
    ],
    [
      'obs-text in the target',
      'GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n',
      [req(head({ target: '/caf\xc3\xa9', headers: [['Host', 'h']] })), done()],
    ],
  ];

  for (const [name, input, expected, options] of cases) {
    test(name, () => {
      assert.deepEqual(parseEveryWay(input, options), expected);
    });
  }
});

// ---------------------------------------------------------------------- strictness

/**
 * `input` must fail with `kind`, the same way at every split, and the valid
 * request after it must never be parsed.
 */
function assertRefused(
  input: string | Buffer,
  kind: ParseErrorKind,
  options?: ParserOptions,
): Event[] {
  const buf = Buffer.concat([typeof input === 'string' ? bytes(input) : input, bytes(NEXT)]);
  const events = parseEveryWay(buf, options);
  const [status, code] = PARSE_ERRORS[kind];
  assert.deepEqual(events.at(-1), { type: 'error', status, code });
  assert.equal(events.filter((e) => e.type === 'error').length, 1);
  for (const e of events) if (e.type === 'request') assert.notEqual(e.head.target, '/next');
  return events;
}

const H = 'Host: h\r\n';

describe('strictness: each refusal has its status and code, and nothing after it is parsed', () => {
  const cases: [string, string, ParseErrorKind, ParserOptions?][] = [
    // ---- request smuggling vectors
    [
      'CL.TE',
      `POST / HTTP/1.1\r\n${H}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG`,
      'CONTENT_LENGTH_WITH_TRANSFER_ENCODING',
    ],
    [
      'TE.CL',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n`,
      'CONTENT_LENGTH_WITH_TRANSFER_ENCODING',
    ],
    [
      'TE.TE: xchunked',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n`,
      'CHUNKED_NOT_FINAL',
    ],
    [
      'TE.TE: chunked, identity',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\n\r\n`,
      'CHUNKED_NOT_FINAL',
    ],
    [
      'TE.TE: chunked then another TE field',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n`,
      'CHUNKED_NOT_FINAL',
    ],
    [
      'TE.TE: space before the name (obs-fold)',
      `POST / HTTP/1.1\r\n${H} Transfer-Encoding: chunked\r\n\r\n`,
      'OBS_FOLD',
    ],
    [
      'TE.TE: space before the colon',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\n\r\n`,
      'WHITESPACE_BEFORE_COLON',
    ],
    [
      'TE.TE: tab before the colon',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding\t: chunked\r\n\r\n`,
      'WHITESPACE_BEFORE_COLON',
    ],
    [
      'TE.TE: value folded onto the next line',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding:\r\n chunked\r\n\r\n`,
      'OBS_FOLD',
    ],
    [
      'TE.TE: \\x0bchunked',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: \x0bchunked\r\n\r\n`,
      'INVALID_HEADER_VALUE',
    ],
    [
      'TE.TE: name then LF then colon',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding\n: chunked\r\n\r\n`,
      'MISSING_COLON',
    ],
    [
      'TE.TE: tab-prefixed value with Content-Length',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding:\tchunked\r\nContent-Length: 4\r\n\r\n`,
      'CONTENT_LENGTH_WITH_TRANSFER_ENCODING',
    ],
    [
      'TE hidden after a bare LF, with Content-Length',
      `POST / HTTP/1.1\r\n${H}X: X\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n`,
      'CONTENT_LENGTH_WITH_TRANSFER_ENCODING',
    ],
    [
      'Transfer-Encoding: chunked + Content-Length: 0',
      `POST / HTTP/1.1\r\n${H}Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      'CONTENT_LENGTH_WITH_TRANSFER_ENCODING',
    ],
    [
      'chunk size with 37 digits',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${'0'.repeat(36)}5\r\nhello\r\n0\r\n\r\n`,
      'CHUNK_SIZE_TOO_LARGE',
    ],
    // ---- Content-Length
    [
      'differing Content-Length fields',
      `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`,
      'CONFLICTING_CONTENT_LENGTH',
    ],
    [
      'differing Content-Length list',
      `POST / HTTP/1.1\r\n${H}Content-Length: 5, 6\r\n\r\nhello!`,
      'CONFLICTING_CONTENT_LENGTH',
    ],
    [
      'Content-Length not decimal',
      `POST / HTTP/1.1\r\n${H}Content-Length: abc\r\n\r\n`,
      'INVALID_CONTENT_LENGTH',
    ],
    [
      'Content-Length hex',
      `POST / HTTP/1.1\r\n${H}Content-Length: 0x5\r\n\r\n`,
      'INVALID_CONTENT_LENGTH',
    ],
    [
      'Content-Length with a fraction',
      `POST / HTTP/1.1\r\n${H}Content-Length: 5.0\r\n\r\n`,
      'INVALID_CONTENT_LENGTH',
    ],
    [
      'Content-Length with an exponent',
      `POST / HTTP/1.1\r\n${H}Content-Length: 1e3\r\n\r\n`,
      'INVALID_CONTENT_LENGTH',
    ],
    [
      'Content-Length negative',
      `POST / HTTP/1.1\r\n${H}Content-Length: -5\r\n\r\n`,
      'INVALID_CONTENT_LENGTH',
    ],
    [
      'Content-Length with a plus sign',
      `POST / HTTP/1.1\r\n${H}Content-Length: +5\r\n\r\n`,
      'INVALID_CONTENT_LENGTH',
    ],
    [
      'Content-Length empty',
      `POST / HTTP/1.1\r\n${H}Content-Length: \r\n\r\n`,
      'INVALID_CONTENT_LENGTH',
    ],
    [
      'Content-Length with inner space',
      `POST / HTTP/1.1\r\n${H}Content-Length: 1 2\r\n\r\n`,
      'INVALID_CONTENT_LENGTH',
    ],
    [
      'Content-Length with a trailing comma',
      `POST / HTTP/1.1\r\n${H}Content-Length: 5,\r\n\r\n`,
      'INVALID_CONTENT_LENGTH',
    ],
    [
      'Content-Length with a leading comma',
      `POST / HTTP/1.1\r\n${H}Content-Length: , 5\r\n\r\n`,
      'INVALID_CONTENT_LENGTH',
    ],
    [
      'Content-Length 2^53',
      `POST / HTTP/1.1\r\n${H}Content-Length: 9007199254740992\r\n\r\n`,
      'INVALID_CONTENT_LENGTH',
    ],
    [
      'Content-Length with 30 digits',
      `POST / HTTP/1.1\r\n${H}Content-Length: ${'9'.repeat(30)}\r\n\r\n`,
      'INVALID_CONTENT_LENGTH',
    ],
    // ---- Transfer-Encoding
    [
      'unknown coding alone',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n`,
      'CHUNKED_NOT_FINAL',
    ],
    [
      'unknown coding before chunked',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`,
      'UNSUPPORTED_TRANSFER_CODING',
    ],
    [
      'unknown coding in an earlier field',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: br\r\nTransfer-Encoding: chunked\r\n\r\n`,
      'UNSUPPORTED_TRANSFER_CODING',
    ],
    [
      'chunked before another coding',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, gzip\r\n\r\n`,
      'CHUNKED_NOT_FINAL',
    ],
    [
      'chunked twice',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, chunked\r\n\r\n`,
      'CHUNKED_NOT_FINAL',
    ],
    [
      'chunked with a parameter',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked;q=1\r\n\r\n`,
      'CHUNKED_NOT_FINAL',
    ],
    [
      'empty Transfer-Encoding',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding:\r\n\r\n`,
      'CHUNKED_NOT_FINAL',
    ],
    [
      'Transfer-Encoding in HTTP/1.0',
      'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'TRANSFER_ENCODING_HTTP10',
    ],
    [
      'CONNECT with Content-Length',
      'CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\nContent-Length: 5\r\n\r\nhello',
      'CONNECT_WITH_BODY',
    ],
    [
      'CONNECT with Transfer-Encoding',
      'CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'CONNECT_WITH_BODY',
    ],
    // ---- field syntax
    ['obs-fold', `GET / HTTP/1.1\r\n${H}X-A: one\r\n two\r\n\r\n`, 'OBS_FOLD'],
    ['obs-fold with a tab', `GET / HTTP/1.1\r\n${H}X-A: one\r\n\ttwo\r\n\r\n`, 'OBS_FOLD'],
    [
      'whitespace between the request line and the first field',
      'GET / HTTP/1.1\r\n Host: h\r\n\r\n',
      'OBS_FOLD',
    ],
    ['bare CR in a value', `GET / HTTP/1.1\r\n${H}X-A: a\rb\r\n\r\n`, 'BARE_CR'],
    ['bare CR at the end of a value', `GET / HTTP/1.1\r\n${H}X-A: a\r\r\n\r\n`, 'BARE_CR'],
    ['bare CR in a name', `GET / HTTP/1.1\r\n${H}X\rA: a\r\n\r\n`, 'BARE_CR'],
    ['bare CR as a line', `GET / HTTP/1.1\r\n${H}\r\r\n\r\n`, 'BARE_CR'],
    ['bare CR ending the head', `GET / HTTP/1.1\r\n${H}\rX`, 'BARE_CR'],
    ['bare CR in the request line', 'GET /\r HTTP/1.1\r\nHost: h\r\n\r\n', 'BARE_CR'],
    ['bare CR ending the request line', 'GET / HTTP/1.1\rHost: h\r\n\r\n', 'BARE_CR'],
    ['bare CR before the request line', '\rGET / HTTP/1.1\r\nHost: h\r\n\r\n', 'BARE_CR'],
    ['NUL in a value', `GET / HTTP/1.1\r\n${H}X-A: a\x00b\r\n\r\n`, 'INVALID_HEADER_VALUE'],
    ['DEL in a value', `GET / HTTP/1.1\r\n${H}X-A: a\x7fb\r\n\r\n`, 'INVALID_HEADER_VALUE'],
    ['control byte in a value', `GET / HTTP/1.1\r\n${H}X-A: \x01\r\n\r\n`, 'INVALID_HEADER_VALUE'],
    ['form feed in a value', `GET / HTTP/1.1\r\n${H}X-A: a\x0cb\r\n\r\n`, 'INVALID_HEADER_VALUE'],
    ['"@" in a name', `GET / HTTP/1.1\r\n${H}X@A: a\r\n\r\n`, 'INVALID_HEADER_NAME'],
    ['"(" in a name', `GET / HTTP/1.1\r\n${H}X(A): a\r\n\r\n`, 'INVALID_HEADER_NAME'],
    ['obs-text in a name', `GET / HTTP/1.1\r\n${H}X\xe9: a\r\n\r\n`, 'INVALID_HEADER_NAME'],
    ['NUL in a name', `GET / HTTP/1.1\r\n${H}X\x00: a\r\n\r\n`, 'INVALID_HEADER_NAME'],
    ['empty name', `GET / HTTP/1.1\r\n${H}: a\r\n\r\n`, 'EMPTY_HEADER_NAME'],
    ['no colon', `GET / HTTP/1.1\r\n${H}NoColon\r\n\r\n`, 'MISSING_COLON'],
    ['no colon, bare LF', `GET / HTTP/1.1\r\n${H}NoColon\n\r\n`, 'MISSING_COLON'],
    // ---- Host
    ['missing Host in HTTP/1.1', 'GET / HTTP/1.1\r\nX-A: b\r\n\r\n', 'MISSING_HOST'],
    ['missing Host with an absolute target', 'GET http://h/ HTTP/1.1\r\n\r\n', 'MISSING_HOST'],
    ['duplicate Host', 'GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n', 'DUPLICATE_HOST'],
    [
      'duplicate Host in HTTP/1.0',
      'GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n',
      'DUPLICATE_HOST',
    ],
    ['Host with a space', 'GET / HTTP/1.1\r\nHost: a b\r\n\r\n', 'INVALID_HOST'],
    ['Host with two ports', 'GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n', 'INVALID_HOST'],
    ['Host with a non-digit port', 'GET / HTTP/1.1\r\nHost: a:80a\r\n\r\n', 'INVALID_HOST'],
    ['Host with userinfo', 'GET / HTTP/1.1\r\nHost: user@a\r\n\r\n', 'INVALID_HOST'],
    ['Host with a path', 'GET / HTTP/1.1\r\nHost: a/b\r\n\r\n', 'INVALID_HOST'],
    ['Host with a bad percent-encoding', 'GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n', 'INVALID_HOST'],
    ['Host with an unclosed IPv6 literal', 'GET / HTTP/1.1\r\nHost: [::1\r\n\r\n', 'INVALID_HOST'],
    ['Host with an empty IPv6 literal', 'GET / HTTP/1.1\r\nHost: []\r\n\r\n', 'INVALID_HOST'],
    [
      'Host with junk after an IPv6 literal',
      'GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n',
      'INVALID_HOST',
    ],
    ['Host with a bracketed name', 'GET / HTTP/1.1\r\nHost: [hello]\r\n\r\n', 'INVALID_HOST'],
    ['Host with an IPv6 zone', 'GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]\r\n\r\n', 'INVALID_HOST'],
    [
      'Host with a bad IPv6 address',
      'GET / HTTP/1.1\r\nHost: [1:2:3:4:5:6:7:8:9]\r\n\r\n',
      'INVALID_HOST',
    ],
    ['Host with an empty IPvFuture', 'GET / HTTP/1.1\r\nHost: [v1.]\r\n\r\n', 'INVALID_HOST'],
    // ---- version
    ['HTTP/2.0', 'GET / HTTP/2.0\r\nHost: h\r\n\r\n', 'VERSION_NOT_SUPPORTED'],
    ['HTTP/3.0', 'GET / HTTP/3.0\r\nHost: h\r\n\r\n', 'VERSION_NOT_SUPPORTED'],
    ['HTTP/0.9 spelled out', 'GET / HTTP/0.9\r\nHost: h\r\n\r\n', 'VERSION_NOT_SUPPORTED'],
    ['the HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'VERSION_NOT_SUPPORTED'],
    ['lower-case http/1.1', 'GET / http/1.1\r\nHost: h\r\n\r\n', 'INVALID_VERSION'],
    ['HTTP/1', 'GET / HTTP/1\r\nHost: h\r\n\r\n', 'INVALID_VERSION'],
    ['HTTP/1.10', 'GET / HTTP/1.10\r\nHost: h\r\n\r\n', 'INVALID_VERSION'],
    ['HTTP/11.1', 'GET / HTTP/11.1\r\nHost: h\r\n\r\n', 'INVALID_VERSION'],
    ['HTTP/a.b', 'GET / HTTP/a.b\r\nHost: h\r\n\r\n', 'INVALID_VERSION'],
    ['a missing version (HTTP/0.9 style)', 'GET /\r\nHost: h\r\n\r\n', 'INVALID_VERSION'],
    ['a space after the version', 'GET / HTTP/1.1 \r\nHost: h\r\n\r\n', 'INVALID_VERSION'],
    ['junk after the version', 'GET / HTTP/1.1 x\r\nHost: h\r\n\r\n', 'INVALID_VERSION'],
    // ---- request line
    ['two spaces after the method', 'GET  / HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_REQUEST_LINE'],
    ['two spaces before the version', 'GET /  HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_REQUEST_LINE'],
    ['a tab after the method', 'GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_REQUEST_LINE'],
    ['a tab before the version', 'GET /\tHTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_REQUEST_LINE'],
    ['a space before the method', ' GET / HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_REQUEST_LINE'],
    ['a method alone', 'GET\r\nHost: h\r\n\r\n', 'INVALID_REQUEST_LINE'],
    ['a method and a space', 'GET \r\nHost: h\r\n\r\n', 'INVALID_REQUEST_LINE'],
    ['a non-token method', 'GE(T / HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_METHOD'],
    ['a method with obs-text', 'G\xc9T / HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_METHOD'],
    ['a TLS handshake', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03', 'INVALID_REQUEST_LINE'],
    ['a relative target', 'GET foo HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_TARGET'],
    ['"*" for GET', 'GET * HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_TARGET'],
    ['"*x" for OPTIONS', 'OPTIONS *x HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_TARGET'],
    ['authority-form for GET', 'GET example.com:80 HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_TARGET'],
    ['a scheme without "//"', 'GET http:/x HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_TARGET'],
    [
      'a scheme starting with a digit',
      'GET 1http://x/ HTTP/1.1\r\nHost: h\r\n\r\n',
      'INVALID_TARGET',
    ],
    ['origin-form for CONNECT', 'CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_TARGET'],
    ['CONNECT without a port', 'CONNECT example.com HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_TARGET'],
    [
      'CONNECT with an empty port',
      'CONNECT example.com: HTTP/1.1\r\nHost: h\r\n\r\n',
      'INVALID_TARGET',
    ],
    [
      'CONNECT with absolute-form',
      'CONNECT http://h:443/ HTTP/1.1\r\nHost: h\r\n\r\n',
      'INVALID_TARGET',
    ],
    ['a control byte in the target', 'GET /a\x01b HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_TARGET'],
    ['DEL in the target', 'GET /a\x7fb HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_TARGET'],
    ['NUL in the target', 'GET /a\x00 HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_TARGET'],
    // ---- chunked coding
    [
      'a non-hex chunk size',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nxyz\r\n`,
      'INVALID_CHUNK_SIZE',
    ],
    [
      'an empty chunk size',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n\r\n`,
      'INVALID_CHUNK_SIZE',
    ],
    [
      'a negative chunk size',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n-1\r\n`,
      'INVALID_CHUNK_SIZE',
    ],
    [
      'a 0x-prefixed chunk size',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n`,
      'INVALID_CHUNK_SIZE',
    ],
    [
      'a space before the chunk size',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n`,
      'INVALID_CHUNK_SIZE',
    ],
    [
      'a space after the chunk size',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n`,
      'INVALID_CHUNK_SIZE',
    ],
    [
      '17 hex digits',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n00000000000000005\r\nhello\r\n0\r\n\r\n`,
      'CHUNK_SIZE_TOO_LARGE',
    ],
    [
      'a chunk size of 2^53',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n20000000000000\r\n`,
      'CHUNK_SIZE_TOO_LARGE',
    ],
    [
      'chunk data not followed by CRLF',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n`,
      'MISSING_CHUNK_CRLF',
    ],
    [
      'chunk data followed by a bare LF',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n`,
      'MISSING_CHUNK_CRLF',
    ],
    [
      'chunk data followed by CR and no LF',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\rX0\r\n\r\n`,
      'MISSING_CHUNK_CRLF',
    ],
    [
      'a chunk size line ended by a bare LF',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n`,
      'BARE_LF',
    ],
    [
      'a chunk extension ended by a bare LF',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5;a\nhello\r\n0\r\n\r\n`,
      'BARE_LF',
    ],
    [
      'a control byte in a chunk extension',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5;a\x01\r\nhello\r\n0\r\n\r\n`,
      'INVALID_CHUNK_EXTENSION',
    ],
    [
      'a bare CR in a chunk extension',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5;a\rb\r\nhello\r\n0\r\n\r\n`,
      'BARE_CR',
    ],
    [
      'a chunk extension without ";"',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5 a\r\nhello\r\n0\r\n\r\n`,
      'INVALID_CHUNK_SIZE',
    ],
    [
      'obs-fold in trailers',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\r\n b\r\n\r\n`,
      'OBS_FOLD',
    ],
    [
      'whitespace before a trailer colon',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\nX-T : a\r\n\r\n`,
      'WHITESPACE_BEFORE_COLON',
    ],
    [
      'a trailer ended by a bare LF',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\n\r\n`,
      'BARE_LF',
    ],
    [
      'the trailer section ended by a bare LF',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\n\n`,
      'BARE_LF',
    ],
    [
      'NUL in a trailer',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: \x00\r\n\r\n`,
      'INVALID_HEADER_VALUE',
    ],
  ];

  for (const [name, input, kind, options] of cases) {
    test(`${name} → ${PARSE_ERRORS[kind][0]} ${kind}`, () => {
      assertRefused(input, kind, options);
    });
  }

  test('the head of a request whose body turns out bad is delivered before the error', () => {
    const events = assertRefused(
      `POST /bad HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n`,
      'INVALID_CHUNK_SIZE',
    );
    assert.equal(events[0]!.type, 'request');
    assert.deepEqual(events[1], body('abc'));
  });

  test('a bad request after good ones: the good ones are parsed, nothing after the bad one', () => {
    const events = assertRefused(
      `GET /1 HTTP/1.1\r\n${H}\r\nGET /2 HTTP/1.1\r\n${H}X-A: a\x00\r\n\r\n`,
      'INVALID_HEADER_VALUE',
    );
    assert.deepEqual(
      events.map((e) => e.type),
      ['request', 'complete', 'error'],
    );
  });

  test('no bare LF at all when allowBareLF is false', () => {
    const strict = { allowBareLF: false };
    assertRefused('GET / HTTP/1.1\nHost: h\r\n\r\n', 'BARE_LF', strict);
    assertRefused('GET / HTTP/1.1\r\nHost: h\n\r\n', 'BARE_LF', strict);
    assertRefused('GET / HTTP/1.1\r\nHost: h\r\n\n', 'BARE_LF', strict);
    assertRefused('\nGET / HTTP/1.1\r\nHost: h\r\n\r\n', 'BARE_LF', strict);
    assert.deepEqual(parseEveryWay(`\r\nGET / HTTP/1.1\r\n${H}\r\n`, strict), [
      req(head({ headers: [['Host', 'h']] })),
      done(),
    ]);
  });
});

// ---------------------------------------------------------------------- limits

describe('limits: exactly at the limit passes, one over fails', () => {
  test('maxRequestLineLength: 414 for the target, 400 for the method', () => {
    const options = { maxRequestLineLength: 64 };
    const line = (n: number): string => `GET /${'a'.repeat(n - 'GET / HTTP/1.1'.length)} HTTP/1.1`;
    assert.equal(line(64).length, 64);
    const events = parseEveryWay(`${line(64)}\r\n${H}\r\n`, options);
    assert.equal(events[0]!.type, 'request');
    assertRefused(`${line(65)}\r\n${H}\r\n`, 'URI_TOO_LONG', options);
    // Long lines that never end are refused before their end arrives.
    assert.deepEqual(feed([bytes(`GET /${'a'.repeat(100)}`)], options).events, [
      { type: 'error', status: 414, code: 'TORSION_ERR_HTTP_URI_TOO_LONG' },
    ]);
    assertRefused(`${'M'.repeat(65)} / HTTP/1.1\r\n${H}\r\n`, 'METHOD_TOO_LONG', options);
    assert.deepEqual(feed([bytes('M'.repeat(100))], options).events, [
      { type: 'error', status: 400, code: 'TORSION_ERR_HTTP_METHOD_TOO_LONG' },
    ]);
    // The default is 8 KiB.
    assert.equal(
      parseEveryWay(`GET /${'a'.repeat(8192 - 14)} HTTP/1.1\r\n${H}\r\n`)[0]!.type,
      'request',
    );
    assertRefused(`GET /${'a'.repeat(8192 - 13)} HTTP/1.1\r\n${H}\r\n`, 'URI_TOO_LONG');
  });

  test('maxHeaderSize counts field lines, their endings and the final empty line', () => {
    const options = { maxHeaderSize: 100 };
    const section = (n: number): string => {
      const fixed = `${H}X: \r\n\r\n`.length;
      return `${H}X: ${'v'.repeat(n - fixed)}\r\n\r\n`;
    };
    assert.equal(section(100).length, 100);
    assert.equal(parseEveryWay(`GET / HTTP/1.1\r\n${section(100)}`, options)[0]!.type, 'request');
    assertRefused(`GET / HTTP/1.1\r\n${section(101)}`, 'HEADERS_TOO_LARGE', options);
    // A field line that never ends.
    assert.deepEqual(feed([bytes(`GET / HTTP/1.1\r\n${H}X: ${'v'.repeat(200)}`)], options).events, [
      { type: 'error', status: 431, code: 'TORSION_ERR_HTTP_HEADERS_TOO_LARGE' },
    ]);
    // The default is 64 KiB.
    const big = (n: number): string => `${H}X: ${'v'.repeat(n - `${H}X: \r\n\r\n`.length)}\r\n\r\n`;
    assert.equal(parseEveryWay(`GET / HTTP/1.1\r\n${big(65536)}`)[0]!.type, 'request');
    assertRefused(`GET / HTTP/1.1\r\n${big(65537)}`, 'HEADERS_TOO_LARGE');
  });

  test('maxHeaderCount', () => {
    const fields = (n: number): string =>
      H + Array.from({ length: n - 1 }, (_, i) => `X-${i}: ${i}\r\n`).join('');
    const events = parseEveryWay(`GET / HTTP/1.1\r\n${fields(5)}\r\n`, { maxHeaderCount: 5 });
    assert.equal(events[0]!.type === 'request' && events[0]!.head.headers.length, 5);
    assertRefused(`GET / HTTP/1.1\r\n${fields(6)}\r\n`, 'TOO_MANY_HEADERS', { maxHeaderCount: 5 });
    assert.equal(parseEveryWay(`GET / HTTP/1.1\r\n${fields(100)}\r\n`)[0]!.type, 'request');
    assertRefused(`GET / HTTP/1.1\r\n${fields(101)}\r\n`, 'TOO_MANY_HEADERS');
  });

  test('maxBodySize: a Content-Length over it is refused before onRequest', () => {
    const options = { maxBodySize: 10 };
    const post = (n: number): string =>
      `POST / HTTP/1.1\r\n${H}Content-Length: ${n}\r\n\r\n${'b'.repeat(n)}`;
    assert.deepEqual(parseEveryWay(post(10), options).slice(1), [body('b'.repeat(10)), done()]);
    const events = assertRefused(post(11), 'BODY_TOO_LARGE', options);
    assert.equal(events.length, 1);
    assert.equal(assertRefused(post(1), 'BODY_TOO_LARGE', { maxBodySize: 0 }).length, 1);
    assert.equal(parseEveryWay(post(0), { maxBodySize: 0 }).length, 2);
    // null is no limit, like the default.
    assert.equal(parseEveryWay(post(100), { maxBodySize: null }).length, 3);
    const head = `POST / HTTP/1.1\r\n${H}Content-Length: ${Number.MAX_SAFE_INTEGER}\r\n\r\n`;
    assert.deepEqual(
      feed([bytes(head)]).events.map((e) => e.type),
      ['request'],
    );
  });

  test('maxBodySize: a chunked body is refused at the size line that crosses it', () => {
    const options = { maxBodySize: 10 };
    const chunked = `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n`;
    assert.deepEqual(
      parseEveryWay(`${chunked}5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n`, options).slice(1),
      [body('helloworld'), done()],
    );
    const events = assertRefused(
      `${chunked}5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n`,
      'BODY_TOO_LARGE',
      options,
    );
    assert.deepEqual(events.slice(1, 2), [body('hello')]);
  });

  test('maxLeadingEmptyLines', () => {
    const get = `GET / HTTP/1.1\r\n${H}\r\n`;
    assert.equal(parseEveryWay(`\r\n\r\n${get}`, { maxLeadingEmptyLines: 2 })[0]!.type, 'request');
    assertRefused(`\r\n\r\n\r\n${get}`, 'TOO_MANY_EMPTY_LINES', { maxLeadingEmptyLines: 2 });
    assertRefused(`\r\n${get}`, 'TOO_MANY_EMPTY_LINES', { maxLeadingEmptyLines: 0 });
    assert.equal(parseEveryWay(`${'\r\n'.repeat(16)}${get}`)[0]!.type, 'request');
    assertRefused(`${'\r\n'.repeat(17)}${get}`, 'TOO_MANY_EMPTY_LINES');
    // The count starts again for each request.
    assert.equal(
      parseEveryWay(`\r\n\r\n${get}\r\n\r\n${get}`, { maxLeadingEmptyLines: 2 }).length,
      4,
    );
  });

  test('maxChunkExtensionLength', () => {
    const options = { maxChunkExtensionLength: 10 };
    const chunked = `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n`;
    const ext = ';a=1234567';
    assert.equal(ext.length, 10);
    assert.deepEqual(
      parseEveryWay(`${chunked}5${ext}\r\nhello\r\n0${ext}\r\n\r\n`, options).slice(1),
      [body('hello'), done()],
    );
    assertRefused(`${chunked}5${ext}8\r\nhello\r\n0\r\n\r\n`, 'CHUNK_EXTENSION_TOO_LONG', options);
    // An extension that never ends is refused before its end arrives.
    const events = feed([bytes(`${chunked}5;${'x'.repeat(100)}`)], options).events;
    assert.deepEqual(events.at(-1), {
      type: 'error',
      status: 400,
      code: 'TORSION_ERR_HTTP_CHUNK_EXTENSION_TOO_LONG',
    });
    const digits = feed([bytes(`${chunked}${'1'.repeat(40)}`)], options).events;
    assert.deepEqual(digits.at(-1), {
      type: 'error',
      status: 400,
      code: 'TORSION_ERR_HTTP_CHUNK_SIZE_TOO_LARGE',
    });
  });

  test('maxTrailerSize and the trailer count', () => {
    const chunked = `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\n`;
    const trailer = 'X-T: 12345678901\r\n';
    assert.equal(trailer.length + 2, 20);
    assert.deepEqual(parseEveryWay(`${chunked}${trailer}\r\n`, { maxTrailerSize: 20 }).slice(1), [
      done([['X-T', '12345678901']]),
    ]);
    assertRefused(`${chunked}X-T: 123456789012\r\n\r\n`, 'TRAILERS_TOO_LARGE', {
      maxTrailerSize: 20,
    });
    const never = feed([bytes(`${chunked}X-T: ${'v'.repeat(100)}`)], { maxTrailerSize: 20 }).events;
    assert.deepEqual(never.at(-1), {
      type: 'error',
      status: 431,
      code: 'TORSION_ERR_HTTP_TRAILERS_TOO_LARGE',
    });
    const options = { maxHeaderCount: 2 };
    assert.deepEqual(parseEveryWay(`${chunked}A: 1\r\nB: 2\r\n\r\n`, options).slice(1), [
      done([
        ['A', '1'],
        ['B', '2'],
      ]),
    ]);
    assertRefused(`${chunked}A: 1\r\nB: 2\r\nC: 3\r\n\r\n`, 'TOO_MANY_TRAILERS', options);
  });

  test('options are checked', () => {
    const handler = new Recorder();
    for (const bad of [
      0,
      -1,
      1.5,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      '5' as unknown as number,
    ]) {
      for (const name of [
        'maxRequestLineLength',
        'maxHeaderSize',
        'maxHeaderCount',
        'maxChunkExtensionLength',
        'maxTrailerSize',
      ]) {
        assert.throws(
          () => new RequestParser(handler, { [name]: bad }),
          InvalidArgumentError,
          `${name}: ${bad}`,
        );
      }
    }
    assert.throws(() => new RequestParser(handler, { maxBodySize: -1 }), InvalidArgumentError);
    assert.throws(() => new RequestParser(handler, { maxBodySize: 0.5 }), InvalidArgumentError);
    assert.throws(
      () => new RequestParser(handler, { maxLeadingEmptyLines: -1 }),
      InvalidArgumentError,
    );
    new RequestParser(handler, { maxBodySize: null, maxLeadingEmptyLines: 0 });
  });
});

// ---------------------------------------------------------------------- pause, resume, lifecycle

/** A recorder that runs `hook` after recording each event. */
class Hooked extends Recorder {
  constructor(private readonly hook: (event: Event['type'], self: Hooked) => void) {
    super();
  }
  parser!: RequestParser;
  override onRequest(h: RequestHead): void {
    super.onRequest(h);
    this.hook('request', this);
  }
  override onBody(chunk: Buffer): void {
    super.onBody(chunk);
    this.hook('body', this);
  }
  override onMessageComplete(trailers: Headers | null): void {
    super.onMessageComplete(trailers);
    this.hook('complete', this);
  }
}

function hooked(
  hook: (event: Event['type'], self: Hooked) => void,
  options?: ParserOptions,
): Hooked {
  const h = new Hooked(hook);
  h.parser = new RequestParser(h, options);
  return h;
}

describe('pause and resume', () => {
  const first = `GET /1 HTTP/1.1\r\n${H}\r\n`;
  const second = `GET /2 HTTP/1.1\r\n${H}\r\n`;

  test('pausing at the end of a message leaves pipelined requests unparsed until resumed', () => {
    const h = hooked((event, self) => {
      if (event === 'complete') self.parser.pause();
    });
    const input = bytes(first + second);
    const n = h.parser.execute(input);
    assert.equal(n, first.length);
    assert.ok(h.parser.paused);
    assert.deepEqual(
      h.events.map((e) => e.type),
      ['request', 'complete'],
    );
    // While paused nothing is consumed.
    assert.equal(h.parser.execute(input.subarray(n)), 0);
    assert.equal(h.events.length, 2);
    h.parser.resume();
    assert.equal(h.parser.execute(input.subarray(n)), second.length);
    assert.equal(h.events.length, 4);
    assert.equal(h.heads[1]!.target, '/2');
  });

  test('pausing in onRequest of a message without a body still completes it', () => {
    const h = hooked((event, self) => {
      if (event === 'request') self.parser.pause();
    });
    assert.equal(h.parser.execute(bytes(first + second)), first.length);
    assert.deepEqual(
      h.events.map((e) => e.type),
      ['request', 'complete'],
    );
  });

  test('pausing in onRequest stops before the body', () => {
    const h = hooked((event, self) => {
      if (event === 'request') self.parser.pause();
    });
    const headPart = `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\n`;
    const input = bytes(`${headPart}hello${second}`);
    assert.equal(h.parser.execute(input), headPart.length);
    assert.ok(h.parser.inBody);
    h.parser.resume();
    assert.equal(h.parser.execute(input.subarray(headPart.length)), 5 + second.length);
    assert.deepEqual(
      h.events.map((e) => e.type),
      ['request', 'body', 'complete', 'request', 'complete'],
    );
  });

  test('pausing in onBody stops after that piece; the end of a Content-Length body is still reported', () => {
    const h = hooked((event, self) => {
      if (event === 'body') self.parser.pause();
    });
    const headPart = `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\n`;
    const input = bytes(`${headPart}hel`);
    assert.equal(h.parser.execute(input), input.length);
    assert.equal(h.parser.execute(bytes('lo')), 0);
    h.parser.resume();
    const rest = bytes(`lo${second}`);
    assert.equal(h.parser.execute(rest), 2);
    assert.deepEqual(
      h.events.map((e) => e.type),
      ['request', 'body', 'complete'],
    );
  });

  test('pausing in onBody of a chunked body leaves the rest of the coding unparsed', () => {
    const h = hooked((event, self) => {
      if (event === 'body') self.parser.pause();
    });
    const headPart = `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n`;
    const input = bytes(`${headPart}3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n`);
    let rest = input;
    const consumed: number[] = [];
    while (rest.length > 0) {
      const n = h.parser.execute(rest);
      consumed.push(n);
      rest = rest.subarray(n);
      h.parser.resume();
    }
    assert.deepEqual(consumed, [headPart.length + 6, 7, 7]);
    assert.deepEqual(h.events.slice(1), [body('abcde'), done()]);
  });

  test('resume inside the callback that paused: parsing goes on', () => {
    const h = hooked((event, self) => {
      if (event === 'complete') {
        self.parser.pause();
        self.parser.resume();
      }
    });
    assert.equal(h.parser.execute(bytes(first + second)), first.length + second.length);
    assert.equal(h.heads.length, 2);
  });

  test('the parser pauses itself after CONNECT: the rest is the tunnel', () => {
    const h = hooked(() => {});
    const connect = 'CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n';
    const input = Buffer.concat([bytes(connect), Buffer.from([0x16, 0x03, 0x01])]);
    assert.equal(h.parser.execute(input), connect.length);
    assert.ok(h.parser.paused);
    assert.deepEqual(
      h.events.map((e) => e.type),
      ['request', 'complete'],
    );
    // Resumed, the tunnel bytes are (rightly) not HTTP.
    h.parser.resume();
    h.parser.execute(input.subarray(connect.length));
    assert.equal(h.events.at(-1)!.type, 'error');
  });

  test('the parser pauses itself after an upgrade request and its body', () => {
    const h = hooked(() => {});
    const upgrade = `POST /u HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 3\r\n\r\nabc`;
    const input = bytes(`${upgrade}PRI * HTTP/2.0\r\n`);
    assert.equal(h.parser.execute(input), upgrade.length);
    assert.ok(h.parser.paused);
    assert.equal(h.heads[0]!.upgrade, true);
    assert.deepEqual(
      h.events.map((e) => e.type),
      ['request', 'body', 'complete'],
    );
  });

  test('an HTTP/1.0 CONNECT pauses, so the tunnel bytes stay with the caller, and is finished', () => {
    const h = hooked(() => {});
    const connect = 'CONNECT h:443 HTTP/1.0\r\n\r\n';
    const input = bytes(`${connect}tunnel`);
    assert.equal(h.parser.execute(input), connect.length);
    assert.ok(h.parser.paused);
    assert.ok(h.parser.finished, 'no keep-alive: no request is parsed after it');
    assert.equal(h.parser.execute(input.subarray(connect.length)), 0);
    h.parser.resume();
    assert.equal(h.parser.execute(bytes(NEXT)), NEXT.length);
    assert.equal(h.heads.length, 1);
  });
});

describe('heads whose fields are decoded on first use', () => {
  /** Keeps the heads; reads nothing from them. */
  class Keeper implements ParserHandler {
    heads: RequestHead[] = [];
    onRequest(head: RequestHead): void {
      this.heads.push(head);
    }
    onBody(): void {}
    onMessageComplete(): void {}
    onError(error: HTTPParseError): void {
      throw error;
    }
  }

  const wire = (method: string, target: string, fields: string): string =>
    `${method} ${target} HTTP/1.1\r\nHost: h\r\n${fields}\r\n`;

  test('a repeated target: each head has its own fields, read after later heads were parsed', () => {
    const keeper = new Keeper();
    const parser = new RequestParser(keeper);
    // Two inputs, each with two requests for the same target; the fields
    // differ; nothing is read until every input has been parsed.
    parser.execute(bytes(wire('GET', '/same', 'X-N: 1\r\n') + wire('GET', '/same', 'X-N: 2\r\n')));
    const second = bytes(wire('GET', '/same', 'X-N: 3\r\n') + wire('POST', '/same', 'X-N: 4\r\n'));
    parser.execute(second);
    parser.execute(bytes(wire('PURGE', '/same', 'X-N: 5\r\n'))); // an uncommon method
    assert.deepEqual(
      keeper.heads.map((h) => [h.method, h.target, h.headers.get('x-n'), h.headers.get('host')]),
      [
        ['GET', '/same', '1', 'h'],
        ['GET', '/same', '2', 'h'],
        ['GET', '/same', '3', 'h'],
        ['POST', '/same', '4', 'h'],
        ['PURGE', '/same', '5', 'h'],
      ],
    );
    assert.deepEqual(
      [...keeper.heads[3]!.headers],
      [
        ['Host', 'h'],
        ['X-N', '4'],
      ],
    );
    assert.equal(keeper.heads[0]!.headers, keeper.heads[0]!.headers, 'made once');
  });

  test('a request line in one input and its fields in the next; a same-length target that differs', () => {
    const keeper = new Keeper();
    const parser = new RequestParser(keeper);
    parser.execute(bytes(wire('GET', '/aaa', 'A: 1\r\n')));
    parser.execute(bytes('GET /aab HTTP/1.1\r\n'));
    parser.execute(bytes('Host: h\r\nB: 2\r\n\r\n'));
    parser.execute(bytes(wire('GET', '/aab', 'C: 3\r\n')));
    assert.deepEqual(
      keeper.heads.map((h) => [h.target, [...h.headers]]),
      [
        [
          '/aaa',
          [
            ['Host', 'h'],
            ['A', '1'],
          ],
        ],
        [
          '/aab',
          [
            ['Host', 'h'],
            ['B', '2'],
          ],
        ],
        [
          '/aab',
          [
            ['Host', 'h'],
            ['C', '3'],
          ],
        ],
      ],
    );
  });
});

describe('lifecycle', () => {
  test('after a message with keepAlive false the parser is finished and ignores the rest', () => {
    const h = hooked(() => {});
    const input = bytes(`GET / HTTP/1.1\r\n${H}Connection: close\r\n\r\n${NEXT}`);
    assert.equal(h.parser.execute(input), input.length);
    assert.ok(h.parser.finished);
    assert.equal(h.parser.execute(bytes(NEXT)), NEXT.length);
    assert.equal(h.heads.length, 1);
  });

  test('after an error the parser is finished, keeps the error, and ignores the rest', () => {
    const h = hooked(() => {});
    const input = bytes(`GET / HTTP/9.9\r\n${H}\r\n`);
    assert.equal(h.parser.execute(input), input.length);
    assert.ok(h.parser.finished);
    assert.ok(h.parser.error instanceof HTTPParseError);
    assert.equal(h.parser.error!.status, 505);
    assert.equal(h.parser.error!.kind, 'VERSION_NOT_SUPPORTED');
    assert.equal(h.parser.execute(bytes(NEXT)), NEXT.length);
    assert.equal(h.events.length, 1);
  });

  test('idle and inBody follow the message', () => {
    const states: [boolean, boolean][] = [];
    const h = hooked((_event, self) => states.push([self.parser.idle, self.parser.inBody]));
    assert.ok(h.parser.idle);
    h.parser.execute(bytes('\r\n'));
    assert.ok(h.parser.idle, 'empty lines keep the parser idle');
    h.parser.execute(bytes('POST / HT'));
    assert.ok(!h.parser.idle);
    h.parser.execute(bytes(`TP/1.1\r\n${H}Content-Length: 2\r\n\r\na`));
    assert.ok(h.parser.inBody);
    h.parser.execute(bytes('b'));
    assert.ok(h.parser.idle);
    assert.ok(!h.parser.inBody);
    assert.deepEqual(states, [
      [false, true],
      [false, true],
      [false, true],
      [true, false],
    ]);
  });

  test('body pieces are views of the input, not copies', () => {
    const views: Buffer[] = [];
    const h = hooked(() => {});
    h.onBody = (chunk: Buffer): void => {
      views.push(chunk);
    };
    const input = bytes(`POST / HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello`);
    h.parser.execute(input);
    assert.equal(views.length, 1);
    assert.equal(views[0]!.buffer, input.buffer);
    assert.equal(views[0]!.byteOffset, input.byteOffset + input.length - 5);
    const chunked = bytes(
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
    );
    h.parser.execute(chunked);
    assert.equal(views[1]!.buffer, chunked.buffer);
    assert.equal(views[1]!.toString(), 'abc');
  });

  test('execute from inside a callback throws ParserStateError, and the parser is finished', () => {
    const h = hooked((event, self) => {
      if (event === 'request') self.parser.execute(bytes(NEXT));
    });
    assert.throws(() => h.parser.execute(bytes(`GET / HTTP/1.1\r\n${H}\r\n`)), ParserStateError);
    assert.ok(h.parser.finished);
    assert.equal(h.parser.execute(bytes(NEXT)), NEXT.length);
    assert.equal(h.heads.length, 1);
  });

  test('an exception from a callback propagates and finishes the parser', () => {
    const boom = new Error('boom');
    const h = hooked((event) => {
      if (event === 'request') throw boom;
    });
    assert.throws(
      () => h.parser.execute(bytes(`GET / HTTP/1.1\r\n${H}\r\n${NEXT}`)),
      (e) => e === boom,
    );
    assert.ok(h.parser.finished);
    assert.equal(h.parser.execute(bytes(NEXT)), NEXT.length);
    assert.equal(h.heads.length, 1);
  });

  test('the head has working Headers and constant method strings', () => {
    const h = hooked(() => {});
    h.parser.execute(
      bytes('POST /p HTTP/1.1\r\nHOST: h\r\nX-Multi: a\r\nx-multi: b\r\nContent-Length: 0\r\n\r\n'),
    );
    const headers = h.heads[0]!.headers;
    assert.equal(headers.get('host'), 'h');
    assert.equal(headers.get('X-MULTI'), 'a, b');
    assert.deepEqual(headers.getAll('x-multi'), ['a', 'b']);
    assert.equal(
      headers.serialize(),
      'HOST: h\r\nX-Multi: a\r\nx-multi: b\r\nContent-Length: 0\r\n',
    );
    assert.equal(h.heads[0]!.method, 'POST');
  });

  test('a long head split into many reads parses the same (random splits, seeded)', () => {
    let seed = 0x2545f491;
    const random = (n: number): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const parts = [
      `GET /a HTTP/1.1\r\n${H}${'X-Long: '.concat('y'.repeat(3000))}\r\nCookie: a=b\r\n\r\n`,
      `POST /b HTTP/1.1\r\n${H}Content-Length: 2000\r\n\r\n${'z'.repeat(2000)}`,
      `\r\nPUT /c HTTP/1.1\n${H}Transfer-Encoding: chunked\r\n\r\n${'3e8;e=1\r\n'}${'q'.repeat(1000)}\r\n10\r\n${'r'.repeat(16)}\r\n0\r\nT: 1\r\n\r\n`,
      `OPTIONS * HTTP/1.1\r\n${H}\r\n`,
    ];
    const input = bytes(parts.join('').repeat(3));
    const whole = feed([input]).events;
    assert.equal(whole.filter((e) => e.type === 'complete').length, 12);
    for (let round = 0; round < 200; round++) {
      const pieces: Buffer[] = [];
      for (let at = 0; at < input.length; ) {
        const size = 1 + random(round % 2 === 0 ? 64 : 2048);
        pieces.push(input.subarray(at, at + size));
        at += size;
      }
      assert.deepEqual(feed(pieces).events, whole, `round ${round}`);
    }
  });
});

// ---------------------------------------------------------------------- differential

/** llhttp's view of `input`, in the harness's event shape (the fields both parsers report). */
function llhttpEvents(binding: HTTPParserBinding, input: Buffer): unknown[] {
  const { HTTPParser, methods } = binding;
  const parser = new HTTPParser();
  parser.initialize(HTTPParser.REQUEST, {}, 0, 0);
  const events: unknown[] = [];
  let flushed: string[] = [];
  let flushedUrl = '';
  const pairs = (flat: string[]): [string, string][] =>
    Array.from({ length: flat.length / 2 }, (_, i) => [flat[2 * i]!, flat[2 * i + 1]!]);
  parser[HTTPParser.kOnHeaders] = (headers: string[], url: string): void => {
    flushed.push(...headers);
    flushedUrl += url;
  };
  parser[HTTPParser.kOnHeadersComplete] = (
    _major: number,
    minor: number,
    headers: string[] | undefined,
    method: number,
    url: string,
    _status: number,
    _message: string,
    _upgrade: boolean,
    keepAlive: boolean,
  ): number => {
    if (headers === undefined) {
      headers = flushed;
      url = flushedUrl;
      flushed = [];
      flushedUrl = '';
    }
    events.push([
      'request',
      methods[method],
      url,
      minor === 0 ? '1.0' : '1.1',
      pairs(headers),
      keepAlive,
    ]);
    return 0;
  };
  parser[HTTPParser.kOnBody] = (b: Buffer): void => {
    const last = events.at(-1) as unknown[];
    if (last[0] === 'body') last[1] += b.toString('latin1');
    else events.push(['body', b.toString('latin1')]);
  };
  parser[HTTPParser.kOnMessageComplete] = (): void => {
    events.push(['complete', flushed.length === 0 ? null : pairs(flushed)]);
    flushed = [];
  };
  const r = parser.execute(input);
  assert.equal(r, input.length, `llhttp refused: ${String(r)}`);
  return events;
}

describe('agrees with llhttp (node:http) on valid requests', () => {
  const binding = loadLlhttp();
  const many = Array.from({ length: 40 }, (_, i) => `X-Field-${i}: value ${i}\r\n`).join('');
  const inputs = [
    `GET / HTTP/1.1\r\n${H}\r\n`,
    'GET /a/b?c=d&e=%20f HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n',
    `POST /form HTTP/1.1\r\n${H}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\na=1&b=2`,
    `PUT /up HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n4;x=1\r\nWiki\r\n5\r\npedia\r\n0\r\nT: v\r\n\r\n`,
    `GET /1 HTTP/1.1\r\n${H}\r\nGET /2 HTTP/1.1\r\n${H}Connection: close\r\n\r\n`,
    'GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /old2 HTTP/1.0\r\n\r\n',
    `OPTIONS * HTTP/1.1\r\n${H}\r\n`,
    `GET http://h/abs?x HTTP/1.1\r\n${H}\r\n`,
    `DELETE /x HTTP/1.1\r\n${H}X-A:  spaced  value \t\r\nX-Empty:\r\nCookie: a=b; c=d\r\n\r\n`,
    `GET /many HTTP/1.1\r\n${H}${many}\r\n`,
    `\r\nPATCH /p HTTP/1.1\r\n${H}Content-Length: 0\r\n\r\n`,
  ];
  for (const input of inputs) {
    test(JSON.stringify(input.slice(0, 40)), (t) => {
      if (binding === null) {
        t.skip("process.binding('http_parser') is not available in this Node");
        return;
      }
      const ours = feed([bytes(input)]).events.map((e) => {
        switch (e.type) {
          case 'request':
            return [
              'request',
              e.head.method,
              e.head.target,
              e.head.version,
              e.head.headers,
              e.head.keepAlive,
            ];
          case 'body':
            return ['body', e.data];
          case 'complete':
            return ['complete', e.trailers];
          default:
            return ['error', e.code];
        }
      });
      assert.deepEqual(ours, llhttpEvents(binding, bytes(input)));
    });
  }
});
