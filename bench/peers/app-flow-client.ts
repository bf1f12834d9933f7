/**
 * The HTTP clients of the app-gateway flow-control measurements
 * (`bench/peers/app-flow-measure.ts` runs them; `bench/app-flow.ts` and
 * `test/app-flow.test.ts` use both), over raw sockets so every byte of flow
 * control is the client's own:
 * - {@link upload}: `POST /upload?rate=R` with a body of N bytes written as
 *   fast as the client's own socket accepts it (`write()` returning false
 *   waits for `drain`), framed with `Content-Length` or chunked; the app
 *   consumes R bytes per second.
 * - {@link download}: `GET /download?bytes=N&mode=M` answered with
 *   `Content-Length: N` by an app producing as fast as the server lets it;
 *   the client reads R bytes per second, pausing its socket
 *   (`pause()`/`resume()`) whenever it is ahead of that pace.
 * - {@link get}: a small GET read to EOF.
 *
 * @module
 */

import net from 'node:net';

/** The size of each piece a client writes and an app puts. */
export const CHUNK = 64 * 1024;
/** One MiB. */
export const MIB = 1024 * 1024;

// ---------------------------------------------------------------------- HTTP pieces

/** A parsed response head: status code, lowercase header names. */
interface Head {
  status: number;
  headers: Map<string, string>;
}

function parseHead(text: string): Head {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
  if (m === null) throw new Error(`not an HTTP response: ${JSON.stringify(lines[0])}`);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  return { status: Number(m[1]), headers };
}

/** The body of a complete response read to EOF: by Content-Length, chunked, or to EOF. */
function decodeBody(head: Head, raw: Buffer): Buffer {
  const length = head.headers.get('content-length');
  if (length !== undefined) return raw.subarray(0, Number(length));
  if (!/chunked/i.test(head.headers.get('transfer-encoding') ?? '')) return raw;
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = raw.indexOf('\r\n', at, 'latin1');
    if (eol === -1) throw new Error('truncated chunked response');
    const size = Number.parseInt(raw.toString('latin1', at, eol), 16);
    if (!Number.isFinite(size)) throw new Error('bad chunk size in response');
    if (size === 0) return Buffer.concat(parts);
    parts.push(raw.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

/** Rejects and destroys `socket` after `ms` unless cleared. */
function deadline(socket: net.Socket, ms: number, what: string, fail: (e: Error) => void) {
  return setTimeout(() => {
    socket.destroy();
    fail(new Error(`${what} did not complete within ${ms} ms`));
  }, ms);
}

// ---------------------------------------------------------------------- a small GET

/**
 * `GET path`, read to EOF (`Connection: close`): the status and body.
 * @throws (rejects) on a socket error, a response without a head, or after `timeoutMs`.
 */
export function get(
  port: number,
  path: string,
  timeoutMs = 10_000,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    const received: Buffer[] = [];
    let settled = false;
    const fail = (e: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(e);
    };
    const timer = deadline(socket, timeoutMs, `GET ${path}`, fail);
    socket.on('connect', () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`);
    });
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('error', fail);
    socket.on('end', () => {
      if (settled) return;
      const raw = Buffer.concat(received);
      const end = raw.indexOf('\r\n\r\n');
      if (end === -1) return fail(new Error(`GET ${path}: no response head`));
      let head: Head;
      try {
        head = parseHead(raw.toString('latin1', 0, end));
      } catch (e) {
        return fail(e as Error);
      }
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ status: head.status, body: decodeBody(head, raw.subarray(end + 4)).toString() });
    });
  });
}

// ---------------------------------------------------------------------- upload

/** How the upload frames its body. */
export type Framing = 'length' | 'chunked';

/** What the uploading client saw. */
export interface UploadResult {
  /** Body bytes written (not counting chunked framing). */
  readonly bytes: number;
  /** From the first byte written to the response's end. */
  readonly seconds: number;
  /** How many times `socket.write()` returned false (the kernel's buffers were full: TCP pushed back). */
  readonly writeBlocked: number;
  /** Seconds spent waiting for `drain` (the upload paused upstream). */
  readonly blockedSeconds: number;
  readonly status: number;
  /** The response body (the app's JSON counts). */
  readonly response: string;
}

/**
 * Uploads `bytes` to `POST /upload?rate=RATE` as fast as the socket accepts
 * them, then reads the response to EOF (the request says `Connection: close`).
 * @throws (rejects) on a socket error, a close before the response, or after `timeoutMs`.
 */
export function upload(
  port: number,
  bytes: number,
  rate: number,
  framing: Framing,
  timeoutMs: number,
): Promise<UploadResult> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    const frame =
      framing === 'length' ? `Content-Length: ${bytes}\r\n` : 'Transfer-Encoding: chunked\r\n';
    const head =
      `POST /upload?rate=${rate} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
      `Content-Type: application/octet-stream\r\n${frame}Connection: close\r\n\r\n`;
    const data = Buffer.alloc(CHUNK, 0x61);
    // One chunked frame of a whole CHUNK, built once (the data never changes).
    const framed = Buffer.concat([
      Buffer.from(`${CHUNK.toString(16)}\r\n`),
      data,
      Buffer.from('\r\n'),
    ]);
    let sent = 0;
    let writeBlocked = 0;
    let blockedSince = 0;
    let blockedSeconds = 0;
    let start = 0;
    const received: Buffer[] = [];
    let settled = false;
    const fail = (e: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(e);
    };
    const timer = deadline(socket, timeoutMs, 'upload', fail);

    const pump = (): void => {
      if (blockedSince !== 0) {
        blockedSeconds += (performance.now() - blockedSince) / 1000;
        blockedSince = 0;
      }
      while (sent < bytes) {
        const n = Math.min(CHUNK, bytes - sent);
        let piece: Buffer;
        if (framing === 'length') piece = n === CHUNK ? data : data.subarray(0, n);
        else if (n === CHUNK) piece = framed;
        else piece = Buffer.from(`${n.toString(16)}\r\n${'a'.repeat(n)}\r\n`, 'latin1');
        sent += n;
        const more = sent < bytes;
        const ok = socket.write(piece);
        if (!more && framing === 'chunked') socket.write('0\r\n\r\n');
        if (!ok && more) {
          writeBlocked++;
          blockedSince = performance.now();
          socket.once('drain', pump);
          return;
        }
      }
    };

    socket.on('connect', () => {
      start = performance.now();
      socket.write(head);
      pump();
    });
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('error', fail);
    socket.on('end', () => {
      if (settled) return;
      const raw = Buffer.concat(received);
      const end = raw.indexOf('\r\n\r\n');
      if (end === -1) return fail(new Error(`upload: no response head (${raw.length} bytes)`));
      let parsed: Head;
      try {
        parsed = parseHead(raw.toString('latin1', 0, end));
      } catch (e) {
        return fail(e as Error);
      }
      const body = decodeBody(parsed, raw.subarray(end + 4));
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({
        bytes: sent,
        seconds: (performance.now() - start) / 1000,
        writeBlocked,
        blockedSeconds,
        status: parsed.status,
        response: body.toString('utf8'),
      });
    });
  });
}

// ---------------------------------------------------------------------- download

/** What the downloading client saw. */
export interface DownloadResult {
  /** Body bytes read. */
  readonly bytes: number;
  /** From the request written to the last body byte read. */
  readonly seconds: number;
  /** How many times the client paused its socket to keep to its pace. */
  readonly pauses: number;
  readonly status: number;
}

/**
 * `GET /download?bytes=N&mode=MODE`, reading the body at `rate` bytes per
 * second: after each socket read, when the running total is ahead of the
 * pace, the socket is paused (`socket.pause()`: no more reads, the kernel's
 * buffers fill, TCP pushes back on the server) until it is due. Resolves once
 * N body bytes arrived.
 * @throws (rejects) on a non-200, a missing or wrong `Content-Length`, a socket
 *   error, a close before N bytes, or after `timeoutMs`.
 */
export function download(
  port: number,
  bytes: number,
  mode: string,
  rate: number,
  timeoutMs: number,
): Promise<DownloadResult> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    let head: Buffer | null = Buffer.alloc(0);
    let got = 0;
    let pauses = 0;
    let start = 0;
    let resumeTimer: NodeJS.Timeout | null = null;
    let settled = false;
    const finish = (e: Error | null, status = 0): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (resumeTimer !== null) clearTimeout(resumeTimer);
      socket.destroy();
      if (e !== null) reject(e);
      else resolve({ bytes: got, seconds: (performance.now() - start) / 1000, pauses, status });
    };
    const timer = deadline(socket, timeoutMs, 'download', (e) => finish(e));
    let status = 0;

    const onBody = (n: number): void => {
      got += n;
      if (got >= bytes) {
        finish(got > bytes ? new Error(`download: more than ${bytes} body bytes`) : null, status);
        return;
      }
      const due = got / rate - (performance.now() - start) / 1000;
      if (due > 0.001) {
        pauses++;
        socket.pause();
        resumeTimer = setTimeout(() => {
          resumeTimer = null;
          socket.resume();
        }, due * 1000);
      }
    };

    socket.on('connect', () => {
      start = performance.now();
      socket.write(
        `GET /download?bytes=${bytes}&mode=${mode} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
          'Connection: close\r\n\r\n',
      );
    });
    socket.on('data', (chunk: Buffer) => {
      if (head === null) return onBody(chunk.length);
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      let parsed: Head;
      try {
        parsed = parseHead(head.toString('latin1', 0, end));
      } catch (e) {
        return finish(e as Error);
      }
      status = parsed.status;
      const length = parsed.headers.get('content-length');
      if (status !== 200) return finish(new Error(`download: status ${status}`));
      if (length !== String(bytes)) {
        return finish(new Error(`download: Content-Length ${length} (expected ${bytes})`));
      }
      const rest = head.length - end - 4;
      head = null;
      if (bytes === 0) return finish(null, status);
      if (rest > 0) onBody(rest);
    });
    socket.on('error', (e) => finish(e));
    socket.on('close', () => finish(new Error(`download: closed after ${got} of ${bytes} bytes`)));
  });
}
