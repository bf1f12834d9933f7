/** Helpers shared by the static file tests. */

import assert from 'node:assert/strict';
import { readdirSync, readlinkSync, realpathSync } from 'node:fs';

/** How many descriptors of this process are open on `path` (exact: sockets opened meanwhile do not count). */
export function openOn(path: string): number {
  const real = realpathSync(path);
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === real) n++;
    } catch {
      // Closed between the listing and the readlink (the listing's own descriptor).
    }
  }
  return n;
}

/** Open descriptors of this process. */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Resolves when `check()` holds, polling each 5 ms; fails after `ms` (a bound, not a timing). */
export async function eventually(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Splits a multipart/byteranges body into parts (headers, bytes). */
export function parseMultipart(
  body: Buffer,
  contentType: string,
): { headers: Record<string, string>; data: Buffer }[] {
  const m = /^multipart\/byteranges; boundary=([0-9A-Za-z'()+_,./:=?-]+)$/.exec(contentType);
  assert.ok(m, contentType);
  const delimiter = Buffer.from(`--${m[1]}`);
  const parts: { headers: Record<string, string>; data: Buffer }[] = [];
  assert.equal(body.indexOf(delimiter), 0, 'the body starts with the first delimiter');
  let at = delimiter.length;
  for (;;) {
    if (body.subarray(at, at + 4).toString() === '--\r\n') {
      assert.equal(at + 4, body.length, 'nothing after the close delimiter');
      return parts;
    }
    assert.equal(body.subarray(at, at + 2).toString(), '\r\n');
    const headEnd = body.indexOf('\r\n\r\n', at);
    const headers: Record<string, string> = {};
    for (const line of body
      .subarray(at + 2, headEnd)
      .toString('latin1')
      .split('\r\n')) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(headers['content-range']!);
    assert.ok(range, headers['content-range']);
    const start = headEnd + 4;
    const end = start + Number(range[2]) - Number(range[1]) + 1;
    parts.push({ headers, data: body.subarray(start, end) });
    assert.equal(body.subarray(end, end + 2).toString(), '\r\n');
    assert.equal(body.indexOf(delimiter, end + 2), end + 2);
    at = end + 2 + delimiter.length;
  }
}
