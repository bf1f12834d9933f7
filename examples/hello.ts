/**
 * Hello world over HTTP, and a streaming echo. Other tools (the benchmarks,
 * interop checks) rely on exactly this behaviour: keep it.
 *
 *     npx torsion web --listen tcp:8080:interface=127.0.0.1 --resource examples/hello.ts
 *
 * - `GET /` → 200, `Content-Type: text/plain`, body `Hello, world!\n`;
 *   `HEAD /` → the same headers, no body.
 * - any method to `/echo`, with any body framing (Content-Length, chunked,
 *   none) → 200 and the request body back, byte for byte, streamed: each
 *   piece is written as it arrives, and the request body is the response's
 *   producer, so a client that reads the echo slowly pauses its own upload
 *   (a 1 GiB echo runs in bounded memory).
 * - any other path → 404.
 *
 * The default export is the root resource.
 */

import type { Failure } from '../src/reactor/failure.js';
import type { IBodySink, IRequest, IRequestBody } from '../src/web/iweb.js';
import type { RenderResult } from '../src/web/resource.js';
import { NOT_DONE_YET, Resource } from '../src/web/resource.js';

const HELLO = Buffer.from('Hello, world!\n');

/** `GET /`: the greeting (HEAD falls back to it; the channel drops the body). */
export class Hello extends Resource {
  render_GET(request: IRequest): RenderResult {
    request.setHeader('Content-Type', 'text/plain');
    return HELLO;
  }
}

/** Writes each piece of the request body back as it arrives (one per request). */
class EchoSink implements IBodySink {
  readonly #request: IRequest;

  constructor(request: IRequest) {
    this.#request = request;
  }

  dataReceived(data: Buffer): void {
    this.#request.write(data);
  }

  bodyEnded(): void {
    this.#request.unregisterProducer();
    this.#request.finish();
  }

  bodyFailed(_reason: Failure): void {
    // The client went away or sent a malformed body: the channel closes the
    // connection; there is nothing left to answer.
    this.#request.unregisterProducer();
  }
}

/** `/echo`, any method: the request body, streamed back with flow control. */
export class Echo extends Resource {
  override render(request: IRequest): RenderResult {
    const body: IRequestBody = request.bodyStream();
    request.setHeader('Content-Type', 'application/octet-stream');
    // The length is known up front when the client sent one: the response
    // then needs no chunked framing.
    if (body.length !== null) request.setHeader('Content-Length', String(body.length));
    // The body pauses while the client reads the echo slowly (and with it,
    // the reading of the upload).
    request.registerProducer(body, true);
    body.deliverTo(new EchoSink(request));
    return NOT_DONE_YET;
  }
}

const root = new Resource();
root.putChild('', new Hello());
root.putChild('echo', new Echo());

export default root;
