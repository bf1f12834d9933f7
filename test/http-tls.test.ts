/**
 * HTTP over a real TLS port (`listenSSL` + `Site`): `request.isSecure()` is
 * true, and the session cookie is `TORSION_SECURE_SESSION` with `Secure`
 * (and found again on the next request); over plain TCP the same site says
 * `false` and uses `TORSION_SESSION` without `Secure`.
 *
 * The certificate is made at test time with openssl (fixtures/tls/make-cert.ts).
 */

import assert from 'node:assert/strict';
import type net from 'node:net';
import { connect as netConnect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import type { IPv4Address } from '../src/reactor/address.js';
import type { Port } from '../src/reactor/port.js';
import { reactor } from '../src/reactor/reactor.js';
import { listenTCP } from '../src/reactor/tcp.js';
import { listenSSL } from '../src/reactor/tls.js';
import type { Request } from '../src/web/http/request.js';
import type { IRequest, RenderResult } from '../src/web/iweb.js';
import { Resource } from '../src/web/resource.js';
import { Site } from '../src/web/site.js';
import { makeCert, type TestCert } from './fixtures/tls/make-cert.js';
import { header, parseResponses, type Response } from './http-wire.js';

let cert: TestCert;

before(() => {
  cert = makeCert();
});

after(() => {
  cert.remove();
});

/** Answers `secure=<isSecure()> session=<uid> new=<whether the cookie was set>`. */
class WhoAmI extends Resource {
  override isLeaf = true;
  override render(request: IRequest): RenderResult {
    const session = (request as Request).getSession();
    return `secure=${request.isSecure()} session=${session.uid}`;
  }
}

/** Sends `requests` (raw bytes) on `socket` and collects `count` responses. */
function ask(socket: net.Socket, bytes: string, count: number): Promise<Response[]> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const methods = Array.from({ length: count }, () => 'GET');
    const check = (ended: boolean): void => {
      const { responses } = parseResponses(Buffer.concat(chunks), methods, ended);
      if (responses.length === count) {
        socket.off('data', onData);
        resolve(responses);
      } else if (ended) reject(new Error(`only ${responses.length} of ${count} responses`));
    };
    const onData = (d: Buffer): void => {
      chunks.push(d);
      check(false);
    };
    socket.on('data', onData);
    socket.once('end', () => check(true));
    socket.once('error', reject);
    socket.write(bytes);
  });
}

function closed(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) resolve();
    else {
      socket.once('close', () => resolve());
      socket.destroy();
    }
  });
}

const GET = (cookie: string | null): string =>
  `GET / HTTP/1.1\r\nHost: localhost\r\n${cookie === null ? '' : `Cookie: ${cookie}\r\n`}\r\n`;

/** The `name=value` part of the response's Set-Cookie, and its attributes. */
function cookieOf(r: Response): { pair: string; attributes: string[] } {
  const value = header(r, 'set-cookie');
  assert.ok(value !== undefined, 'a Set-Cookie header');
  const [pair, ...attributes] = value.split(';').map((s) => s.trim());
  return { pair: pair!, attributes };
}

describe('HTTP over TLS', () => {
  test('listenSSL: isSecure() true, TORSION_SECURE_SESSION with Secure, found again', async () => {
    const site = new Site(new WhoAmI());
    const port: Port = listenSSL(
      reactor,
      0,
      site,
      { key: cert.key, cert: cert.cert },
      { interface: '127.0.0.1' },
    );
    const socket = tls.connect({
      host: '127.0.0.1',
      port: (port.getHost() as IPv4Address).port,
      ca: cert.cert,
      servername: 'localhost',
    });
    try {
      const [first] = await ask(socket, GET(null), 1);
      assert.equal(first!.status, 200);
      const text = first!.body.toString();
      assert.match(text, /^secure=true session=[0-9a-f]{32}$/, text);
      const { pair, attributes } = cookieOf(first!);
      const uid = text.slice(text.lastIndexOf('=') + 1);
      assert.equal(pair, `TORSION_SECURE_SESSION=${uid}`);
      assert.deepEqual(attributes, ['Path=/', 'Secure', 'HttpOnly', 'SameSite=Lax']);

      // Keep-alive, same connection: the secure cookie finds the session;
      // the insecure cookie name is not looked at over TLS.
      const [again, other] = await ask(
        socket,
        GET(`TORSION_SECURE_SESSION=${uid}`) + GET(`TORSION_SESSION=${uid}`),
        2,
      );
      assert.equal(again!.body.toString(), `secure=true session=${uid}`);
      assert.equal(header(again!, 'set-cookie'), undefined, 'no new cookie for a live session');
      assert.notEqual(other!.body.toString(), `secure=true session=${uid}`);
      assert.equal(cookieOf(other!).pair.startsWith('TORSION_SECURE_SESSION='), true);
    } finally {
      await closed(socket);
      await site.shutdown(0);
      await port.stopListening();
    }
  });

  test('plain TCP: isSecure() false, TORSION_SESSION without Secure', async () => {
    const site = new Site(new WhoAmI());
    const port = listenTCP(reactor, 0, site, { interface: '127.0.0.1' });
    const socket = netConnect((port.getHost() as IPv4Address).port, '127.0.0.1');
    try {
      const [r] = await ask(socket, GET(null), 1);
      assert.match(r!.body.toString(), /^secure=false session=[0-9a-f]{32}$/);
      const { pair, attributes } = cookieOf(r!);
      assert.equal(pair.startsWith('TORSION_SESSION='), true, pair);
      assert.deepEqual(attributes, ['Path=/', 'HttpOnly', 'SameSite=Lax']);
    } finally {
      await closed(socket);
      await site.shutdown(0);
      await port.stopListening();
    }
  });
});
