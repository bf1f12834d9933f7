/**
 * Endpoints: the description parser (a table of good and bad strings),
 * serverFromString/clientFromString against a MemoryReactor (what reaches
 * listenTCP/connectTCP), listen/connect through endpoints on real sockets
 * (tcp, unix, ssl, tls), connectProtocol, cancellation, and
 * HostnameEndpoint (real 'localhost', an injected resolver, the staggered
 * attempts on a MemoryReactor clock).
 */

import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ClientFactory, Factory, Protocol } from '../src/protocols/protocol.js';
import type { IPv4Address, IPv6Address } from '../src/reactor/address.js';
import { Deferred } from '../src/reactor/deferred.js';
import {
  clientFromString,
  EndpointStringError,
  parseDescription,
  serverFromString,
} from '../src/reactor/endpoint-strings.js';
import {
  ConnectingCancelledError,
  connectProtocol,
  HostnameEndpoint,
  type HostResolver,
  NoProtocol,
  type ResolvedAddress,
  SSL4ClientEndpoint,
  SSL4ServerEndpoint,
  TCP4ClientEndpoint,
  TCP4ServerEndpoint,
  TCP6ClientEndpoint,
  TCP6ServerEndpoint,
  UNIXClientEndpoint,
  UNIXServerEndpoint,
} from '../src/reactor/endpoints.js';
import {
  CancelledError,
  CannotListenError,
  ConnectionDone,
  ConnectionRefusedError,
  DNSLookupError,
  InvalidArgumentError,
  UserError,
} from '../src/reactor/errors.js';
import type { Failure } from '../src/reactor/failure.js';
import type { IListeningPort, ITLSTransport } from '../src/reactor/interfaces.js';
import { addObserver, type LogEvent } from '../src/reactor/log.js';
import { reactor } from '../src/reactor/reactor.js';
import { MemoryReactor } from '../src/testing/memory-reactor.js';
import type { StringTransport } from '../src/testing/string-transport.js';
import { makeCert, type TestCert } from './fixtures/tls/make-cert.js';

let cert: TestCert;
let caDir: string;

before(() => {
  cert = makeCert();
  // A directory holding only the certificate (cert.dir also holds the key).
  caDir = mkdtempSync(join(tmpdir(), 'torsion-ca-'));
  copyFileSync(cert.certPath, join(caDir, 'ca.pem'));
});

const openPorts = new Set<IListeningPort>();

after(async () => {
  for (const port of openPorts) await port.stopListening();
  cert.remove();
  rmSync(caDir, { recursive: true, force: true });
});

/** Escapes `:` and `=` for a description. */
function esc(value: string): string {
  return value.replace(/[\\:=]/g, (c) => `\\${c}`);
}

function portOf(port: IListeningPort): number {
  return (port.getHost() as IPv4Address).port;
}

class Echo extends Protocol {
  override dataReceived(data: Buffer): void {
    this.transport.write(data);
  }
}

/** A client protocol whose bytes and loss are awaitable. */
class Client extends Protocol<ITLSTransport> {
  readonly lost = new Deferred<void>();
  reason: Failure | null = null;
  received = '';
  #want = 0;
  #enough: Deferred<void> | null = null;

  override dataReceived(data: Buffer): void {
    this.received += data.toString();
    if (this.#enough !== null && this.received.length >= this.#want) {
      const d = this.#enough;
      this.#enough = null;
      d.callback(undefined);
    }
  }

  override connectionLost(reason: Failure): void {
    this.reason = reason;
    this.lost.callback(undefined);
  }

  waitFor(n: number): Deferred<void> {
    this.#want = n;
    this.#enough = new Deferred<void>();
    const d = this.#enough;
    if (this.received.length >= n) {
      this.#enough = null;
      d.callback(undefined);
    }
    return d;
  }
}

/** A factory counting its starts and stops. */
class Counting<P extends Protocol<ITLSTransport>> extends ClientFactory<P> {
  starts = 0;
  stops = 0;
  builds = 0;
  override startFactory(): void {
    this.starts++;
  }
  override stopFactory(): void {
    this.stops++;
  }
  override buildProtocol(addr: Parameters<ClientFactory<P>['buildProtocol']>[0]): P | null {
    this.builds++;
    return super.buildProtocol(addr);
  }
}

function clientFactory(): Counting<Client> {
  const f = new Counting<Client>();
  f.protocol = Client;
  return f;
}

async function listen(description: string, factory = Factory.forProtocol(Echo)) {
  const port = await serverFromString(reactor, description).listen(factory);
  openPorts.add(port);
  return port;
}

async function unlisten(port: IListeningPort): Promise<void> {
  openPorts.delete(port);
  await port.stopListening();
}

/** Echo round trip, then a clean close. */
async function roundTrip(client: Client): Promise<void> {
  client.transport.write('ping');
  await client.waitFor(4);
  assert.equal(client.received, 'ping');
  client.transport.loseConnection();
  await client.lost;
  assert.ok(client.reason?.check(ConnectionDone));
}

/** Fails with the Deferred's failure value (asserting it fails). */
async function failureOf(d: Deferred<unknown>): Promise<Error> {
  try {
    await d;
  } catch (e) {
    return e as Error;
  }
  assert.fail('expected the Deferred to fail');
}

// ---------------------------------------------------------------------- parsing

describe('parseDescription', () => {
  const table: [string, string, string[], Record<string, string>][] = [
    ['tcp:80', 'tcp', ['80'], {}],
    [
      'tcp:80:interface=127.0.0.1:backlog=50',
      'tcp',
      ['80'],
      { interface: '127.0.0.1', backlog: '50' },
    ],
    ['tcp:port=80', 'tcp', [], { port: '80' }],
    ['tcp6:80:interface=\\:\\:1', 'tcp6', ['80'], { interface: '::1' }],
    ['unix:/a\\:b.sock:mode=660', 'unix', ['/a:b.sock'], { mode: '660' }],
    ['x:k=a=b', 'x', [], { k: 'a=b' }],
    ['x:k=a\\=b', 'x', [], { k: 'a=b' }],
    ['x:a\\\\b', 'x', ['a\\b'], {}],
    ['x:a\\=b', 'x', ['a=b'], {}],
    ['x::', 'x', ['', ''], {}],
    ['x:k=', 'x', [], { k: '' }],
    ['tls:example.com:443', 'tls', ['example.com', '443'], {}],
  ];
  for (const [description, type, args, kwargs] of table) {
    test(`'${description}'`, () => {
      const parsed = parseDescription(description);
      assert.equal(parsed.type, type);
      assert.deepEqual(parsed.args, args);
      assert.deepEqual(Object.fromEntries(parsed.kwargs), kwargs);
    });
  }
});

describe('serverFromString', () => {
  test('good strings make the right endpoints', () => {
    const tcp = serverFromString(reactor, 'tcp:8080:interface=127.0.0.1:backlog=50');
    assert.ok(tcp instanceof TCP4ServerEndpoint);
    assert.equal(tcp.port, 8080);
    assert.deepEqual(tcp.options, { interface: '127.0.0.1', backlog: 50 });

    const kw = serverFromString(reactor, 'tcp:port=0:interface=');
    assert.ok(kw instanceof TCP4ServerEndpoint);
    assert.equal(kw.port, 0);
    assert.equal(kw.options.interface, '');

    const six = serverFromString(reactor, 'tcp6:8080');
    assert.ok(six instanceof TCP6ServerEndpoint);
    assert.equal(six.options.interface, '::');
    const six1 = serverFromString(reactor, 'tcp6:8080:interface=\\:\\:1');
    assert.equal((six1 as TCP6ServerEndpoint).options.interface, '::1');

    const unix = serverFromString(reactor, 'unix:/run/a\\:b.sock:mode=660:lockfile=0');
    assert.ok(unix instanceof UNIXServerEndpoint);
    assert.equal(unix.path, '/run/a:b.sock');
    assert.deepEqual(unix.options, { mode: 0o660, backlog: undefined, wantPID: false });
    const unixDefault = serverFromString(reactor, 'unix:address=/run/x.sock');
    assert.equal((unixDefault as UNIXServerEndpoint).options.mode, 0o666, "Twisted's default");

    const ssl = serverFromString(
      reactor,
      `ssl:8443:privateKey=${esc(cert.keyPath)}:certKey=${esc(cert.certPath)}:interface=127.0.0.1`,
    );
    assert.ok(ssl instanceof SSL4ServerEndpoint);
    assert.equal(ssl.port, 8443);
    assert.deepEqual(ssl.contextOptions.key, cert.key);
    assert.deepEqual(ssl.contextOptions.cert, cert.cert);
    assert.equal(ssl.options.interface, '127.0.0.1');
    const chained = serverFromString(
      reactor,
      `ssl:0:privateKey=${esc(cert.keyPath)}:certKey=${esc(cert.certPath)}:extraCertChain=${esc(cert.certPath)}:sslmethod=TLSv1_2_METHOD`,
    ) as SSL4ServerEndpoint;
    assert.equal(
      (chained.contextOptions.cert as Buffer).length,
      cert.cert.length * 2 + 1,
      'the chain is appended',
    );
    assert.equal(chained.contextOptions.maxVersion, 'TLSv1.2');
  });

  test('listen() hands the parsed arguments to the reactor', async () => {
    const memory = new MemoryReactor();
    const factory = Factory.forProtocol(Echo);
    const port = await serverFromString(memory, 'tcp:8080:interface=127.0.0.1:backlog=7').listen(
      factory,
    );
    assert.equal(memory.tcpServers.length, 1);
    const record = memory.tcpServers[0]!;
    assert.equal(record.port, 8080);
    assert.equal(record.backlog, 7);
    assert.equal(record.interface, '127.0.0.1');
    assert.equal(record.listeningPort, port);
    await serverFromString(memory, 'unix:/run/x.sock:mode=600:backlog=3').listen(factory);
    assert.equal(memory.unixServers[0]?.mode, 0o600);
    assert.equal(memory.unixServers[0]?.backlog, 3);
  });

  const bad: [string, RegExp][] = [
    ['tpc:80', /unknown endpoint type 'tpc' for a server \(known: tcp, tcp6, unix, ssl\)/],
    ['tcp:abc', /port must be an integer: 'abc'/],
    ['tcp:80:bakclog=5', /unknown parameter 'bakclog' for tcp \(known: port, interface, backlog\)/],
    ['tcp:99999', /port must be between 0 and 65535: '99999'/],
    ['tcp:-1', /port must be an integer: '-1'/],
    ['tcp', /missing parameter 'port' for tcp/],
    ['', /must start with the endpoint type/],
    ['=tcp:80', /must start with the endpoint type/],
    ['8080', /unknown endpoint type '8080'/],
    ['tcp:80:backlog=0', /backlog must be between 1/],
    ['tcp:80:backlog=many', /backlog must be an integer: 'many'/],
    ['tcp:80:port=81', /parameter 'port' given twice/],
    ['tcp:80:interface=a:interface=b', /parameter 'interface' given twice/],
    ['tcp:80:127.0.0.1:50:extra', /too many positional arguments for tcp: 'extra'/],
    ['tcp:80\\', /dangling backslash/],
    ['tcp:80:=x', /empty parameter name/],
    ['unix:/x.sock:mode=999', /mode must be an octal file mode: '999'/],
    ['unix:', /address must not be empty/],
    ['unix:/x.sock:lockfile=maybe', /lockfile must be 0 or 1: 'maybe'/],
    ['ssl:8443:privateKey=/nonexistent/key.pem', /cannot read privateKey '\/nonexistent\/key.pem'/],
    ['ssl:8443:sslmethod=SSLv2_METHOD', /sslmethod must be one of/],
  ];
  for (const [description, message] of bad) {
    test(`bad: '${description}'`, () => {
      assert.throws(
        () => serverFromString(reactor, description),
        (e: unknown) => {
          assert.ok(e instanceof EndpointStringError);
          assert.ok(e instanceof InvalidArgumentError);
          assert.equal(e.code, 'TORSION_ERR_ENDPOINT_STRING');
          assert.equal(e.description, description);
          assert.match(e.message, message);
          return true;
        },
      );
    });
  }
});

describe('clientFromString', () => {
  test('good strings make the right endpoints', () => {
    const kw = clientFromString(
      reactor,
      'tcp:host=example.com:port=80:timeout=2.5:bindAddress=127.0.0.1',
    );
    assert.ok(kw instanceof TCP4ClientEndpoint);
    assert.equal(kw.host, 'example.com');
    assert.equal(kw.port, 80);
    assert.deepEqual(kw.options, { timeout: 2.5, bindAddress: ['127.0.0.1', 0] });

    const positional = clientFromString(reactor, 'tcp:example.com:80');
    assert.ok(positional instanceof TCP4ClientEndpoint);
    assert.equal(positional.port, 80);

    const v6 = clientFromString(reactor, 'tcp:host=\\:\\:1:port=80');
    assert.ok(v6 instanceof TCP6ClientEndpoint);
    assert.equal(v6.host, '::1');

    const unix = clientFromString(reactor, 'unix:path=/run/x.sock:timeout=3');
    assert.ok(unix instanceof UNIXClientEndpoint);
    assert.equal(unix.path, '/run/x.sock');
    assert.equal(unix.options.timeout, 3);
    assert.equal(
      (clientFromString(reactor, 'unix:/run/y.sock') as UNIXClientEndpoint).path,
      '/run/y.sock',
    );

    const tls = clientFromString(reactor, `tls:localhost:443:trustRoots=${esc(caDir)}:timeout=5`);
    assert.ok(tls instanceof HostnameEndpoint);
    assert.equal(tls.host, 'localhost');
    assert.equal(tls.options.timeout, 5);
    assert.deepEqual(tls.options.tls?.ca, [cert.cert]);

    const ssl = clientFromString(
      reactor,
      `ssl:host=localhost:port=443:caCertsDir=${esc(caDir)}:certKey=${esc(cert.certPath)}:privateKey=${esc(cert.keyPath)}`,
    );
    assert.ok(ssl instanceof SSL4ClientEndpoint);
    assert.deepEqual(ssl.contextOptions.key, cert.key);
  });

  test('connect() hands the parsed arguments to the reactor and fires with the protocol', async () => {
    const memory = new MemoryReactor();
    const factory = clientFactory();
    const d = clientFromString(
      memory,
      'tcp:host=example.com:port=80:timeout=7:bindAddress=127.0.0.1',
    ).connect(factory);
    const record = memory.tcpClients[0]!;
    assert.equal(record.host, 'example.com');
    assert.equal(record.port, 80);
    assert.equal(record.timeout, 7);
    assert.deepEqual(record.bindAddress, ['127.0.0.1', 0]);
    const { protocol } = memory.connectClient();
    assert.equal(d.called, false, 'fires after makeConnection returned');
    assert.equal(await d, protocol);
  });

  const bad: [string, RegExp][] = [
    [
      'tpc:example.com:80',
      /unknown endpoint type 'tpc' for a client \(known: tcp, tcp6, unix, tls, ssl\)/,
    ],
    ['tcp:host=example.com', /missing parameter 'port' for tcp/],
    ['tcp:example.com:0', /port must be between 1 and 65535: '0'/],
    ['tcp:example.com:http', /port must be an integer: 'http'/],
    ['tcp:example.com:80:timeout=soon', /timeout must be a number of seconds: 'soon'/],
    ['tcp:example.com:80:bindAddress=myhost', /bindAddress must be an IP address: 'myhost'/],
    ['tcp:example.com:80:tiemout=5', /unknown parameter 'tiemout' for tcp/],
    ['tcp::80', /host must not be empty/],
    ['unix:', /path must not be empty/],
    ['unix:/x:checkPID=1', /unknown parameter 'checkPID' for unix/],
    ['tls:example.com:443:privateKey=/x.pem', /privateKey needs certificate/],
    ['tls:example.com:443:trustRoots=/nonexistent', /cannot read trustRoots '\/nonexistent'/],
  ];
  for (const [description, message] of bad) {
    test(`bad: '${description}'`, () => {
      assert.throws(
        () => clientFromString(reactor, description),
        (e: unknown) => e instanceof EndpointStringError && message.test(e.message),
      );
    });
  }
});

// ---------------------------------------------------------------------- real sockets

describe('listen and connect through endpoints', () => {
  test('tcp', async () => {
    const port = await listen('tcp:0:interface=127.0.0.1');
    const factory = clientFactory();
    const client = await clientFromString(reactor, `tcp:127.0.0.1:${portOf(port)}`).connect(
      factory,
    );
    assert.ok(client instanceof Client);
    assert.equal(factory.starts, 1);
    await roundTrip(client);
    assert.equal(factory.stops, 1, 'doStop after the connection ended');
    await unlisten(port);
  });

  test('unix, with its mode', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'torsion-ep-'));
    const path = join(dir, 'a:b.sock');
    try {
      const port = await listen(`unix:${esc(path)}:mode=600`);
      assert.equal(statSync(path).mode & 0o777, 0o600);
      const client = await clientFromString(reactor, `unix:path=${esc(path)}`).connect(
        clientFactory(),
      );
      await roundTrip(client);
      await unlisten(port);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('ssl server, tls and ssl clients', async () => {
    const port = await listen(
      `ssl:0:privateKey=${esc(cert.keyPath)}:certKey=${esc(cert.certPath)}:interface=127.0.0.1`,
    );
    const viaTLS = await clientFromString(
      reactor,
      `tls:localhost:${portOf(port)}:trustRoots=${esc(cert.certPath)}`,
    ).connect(clientFactory());
    assert.equal(viaTLS.transport.getPeerCertificate()?.subject.CN, 'localhost');
    await roundTrip(viaTLS);

    const viaSSL = await clientFromString(
      reactor,
      `ssl:127.0.0.1:${portOf(port)}:caCertsDir=${esc(caDir)}`,
    ).connect(clientFactory());
    await roundTrip(viaSSL);

    // Without trust roots the self-signed certificate is refused.
    const refused = await failureOf(
      clientFromString(reactor, `tls:localhost:${portOf(port)}`).connect(clientFactory()),
    );
    assert.equal(refused.name, 'TLSHandshakeError');
    await unlisten(port);
  });

  test('listen errbacks CannotListenError; connect errbacks ConnectionRefusedError', async () => {
    const port = await listen('tcp:0:interface=127.0.0.1');
    const taken = portOf(port);
    const e = await failureOf(
      serverFromString(reactor, `tcp:${taken}:interface=127.0.0.1`).listen(
        Factory.forProtocol(Echo),
      ),
    );
    assert.ok(e instanceof CannotListenError);
    await unlisten(port);
    const factory = clientFactory();
    const refused = await failureOf(
      new TCP4ClientEndpoint(reactor, '127.0.0.1', taken).connect(factory),
    );
    assert.ok(refused instanceof ConnectionRefusedError);
    assert.equal(factory.builds, 0);
    assert.equal(factory.stops, factory.starts, 'the factory was stopped again');
  });

  test('connectProtocol connects the given instance', async () => {
    const port = await listen('tcp:0:interface=127.0.0.1');
    const mine = new Client();
    const got = await connectProtocol(
      new TCP4ClientEndpoint(reactor, '127.0.0.1', portOf(port)),
      mine,
    );
    assert.equal(got, mine);
    await roundTrip(mine);
    await unlisten(port);
  });

  test('a factory that refuses: NoProtocol, the connection is closed', async () => {
    const port = await listen('tcp:0:interface=127.0.0.1');
    const refusing = new ClientFactory();
    refusing.buildProtocol = () => null;
    const e = await failureOf(
      new TCP4ClientEndpoint(reactor, '127.0.0.1', portOf(port)).connect(refusing),
    );
    assert.ok(e instanceof NoProtocol);
    await unlisten(port);
  });

  test('cancel while connecting: ConnectingCancelledError, no protocol, attempt stopped', async () => {
    const port = await listen('tcp:0:interface=127.0.0.1');
    const factory = clientFactory();
    const d = new TCP4ClientEndpoint(reactor, '127.0.0.1', portOf(port)).connect(factory);
    d.cancel();
    const e = await failureOf(d);
    assert.ok(e instanceof ConnectingCancelledError);
    assert.ok(e instanceof CancelledError);
    assert.equal((e as ConnectingCancelledError).destination, `127.0.0.1:${portOf(port)}`);
    assert.equal(factory.builds, 0);
    assert.equal(factory.stops, 1);
    await unlisten(port);
  });
});

describe('cancellation (MemoryReactor)', () => {
  test('while connecting: the connector is stopped', async () => {
    const memory = new MemoryReactor();
    const factory = clientFactory();
    const d = clientFromString(memory, 'tcp:example.com:80').connect(factory);
    const connector = memory.tcpClients[0]!.connector;
    d.cancel();
    assert.equal(connector.state, 'disconnected');
    assert.ok((await failureOf(d)) instanceof ConnectingCancelledError);
  });

  test('connected but not yet fired: the connection is closed', async () => {
    const memory = new MemoryReactor();
    const d = clientFromString(memory, 'unix:/run/x.sock').connect(clientFactory());
    const connector = memory.unixClients[0]!.connector;
    const { transport } = memory.connectClient<Client, StringTransport>(connector);
    d.cancel();
    assert.equal(transport.disconnecting, true);
    assert.ok((await failureOf(d)) instanceof ConnectingCancelledError);
  });

  test("the stopped attempt's own failure (UserError) is not reported again", async () => {
    const memory = new MemoryReactor();
    const logged: LogEvent[] = [];
    const remove = addObserver((event) => {
      if (event.isError) logged.push(event);
    });
    try {
      const d = clientFromString(memory, 'tcp:example.com:80').connect(clientFactory());
      d.cancel(); // the connector reports UserError to the endpoint's factory
      const e = await failureOf(d);
      assert.ok(e instanceof ConnectingCancelledError);
      assert.ok(!(e instanceof UserError));
      assert.deepEqual(logged, [], 'no AlreadyCalledError, nothing logged');
    } finally {
      remove();
    }
  });
});

// ---------------------------------------------------------------------- HostnameEndpoint

/** A resolver answering `addresses` (or never, or with an error). */
function fixedResolver(addresses: ResolvedAddress[] | Error | null): HostResolver {
  return () => {
    if (addresses === null) return new Promise(() => {});
    if (addresses instanceof Error) return Promise.reject(addresses);
    return Promise.resolve(addresses);
  };
}

const v4 = (address: string): ResolvedAddress => ({ address, family: 4 });
const v6 = (address: string): ResolvedAddress => ({ address, family: 6 });

async function settle(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
}

describe('HostnameEndpoint', () => {
  test("connects to 'localhost' through the system resolver", async () => {
    const port = await listen('tcp:0:interface=127.0.0.1');
    const client = await new HostnameEndpoint(reactor, 'localhost', portOf(port)).connect(
      clientFactory(),
    );
    assert.equal((client.transport.getPeer() as IPv4Address).host, '127.0.0.1');
    await roundTrip(client);
    await unlisten(port);
  });

  test('an address that refuses is skipped: ::1 then 127.0.0.1', async () => {
    const port = await listen('tcp:0:interface=127.0.0.1');
    const factory = clientFactory();
    const endpoint = new HostnameEndpoint(reactor, 'both.test', portOf(port), {
      resolver: fixedResolver([v6('::1'), v4('127.0.0.1')]),
    });
    const client = await endpoint.connect(factory);
    assert.equal((client.transport.getPeer() as IPv4Address | IPv6Address).host, '127.0.0.1');
    assert.equal(factory.starts, 1);
    assert.equal(factory.builds, 1);
    await roundTrip(client);
    assert.equal(factory.stops, 1);
    await unlisten(port);
  });

  test('staggered attempts, families interleaved; the first to connect wins', async () => {
    const memory = new MemoryReactor();
    const factory = clientFactory();
    const d = new HostnameEndpoint(memory, 'many.test', 443, {
      resolver: fixedResolver([
        v6('2001:db8::1'),
        v6('2001:db8::2'),
        v4('192.0.2.1'),
        v4('192.0.2.2'),
      ]),
      timeout: 9,
    }).connect(factory);
    await settle();
    const hosts = () => memory.tcpClients.map((c) => c.host);
    assert.deepEqual(hosts(), ['2001:db8::1']);
    assert.equal(memory.tcpClients[0]!.timeout, 9, 'the timeout applies per attempt');
    memory.advance(0.29);
    assert.deepEqual(hosts(), ['2001:db8::1']);
    memory.advance(0.01);
    assert.deepEqual(hosts(), ['2001:db8::1', '192.0.2.1']);
    // A failure starts the next attempt at once.
    memory.failClient(memory.tcpClients[0]!.connector);
    assert.deepEqual(hosts(), ['2001:db8::1', '192.0.2.1', '2001:db8::2']);
    // The IPv4 attempt connects: it wins, the others are stopped.
    const { protocol } = memory.connectClient<Client>(memory.tcpClients[1]!.connector);
    assert.equal(memory.tcpClients[2]!.connector.state, 'disconnected');
    memory.advance(10);
    assert.equal(memory.tcpClients.length, 3, 'no attempt after a winner');
    assert.equal(await d, protocol);
    assert.equal(factory.starts, 1);
    assert.equal(factory.builds, 1);
  });

  test('every address fails: the last failure', async () => {
    const memory = new MemoryReactor();
    const d = new HostnameEndpoint(memory, 'two.test', 80, {
      resolver: fixedResolver([v4('192.0.2.1'), v4('192.0.2.2')]),
    }).connect(clientFactory());
    await settle();
    memory.failClient(memory.tcpClients[0]!.connector);
    memory.failClient(memory.tcpClients[1]!.connector, new DNSLookupError('last one'));
    const e = await failureOf(d);
    assert.ok(e instanceof DNSLookupError);
    assert.equal(e.message, 'last one');
    assert.equal(memory.getDelayedCalls().length, 0, 'no timer left');
  });

  test('resolution failures: DNSLookupError', async () => {
    const memory = new MemoryReactor();
    const failed = await failureOf(
      new HostnameEndpoint(memory, 'nx.test', 80, {
        resolver: fixedResolver(new Error('ENOTFOUND nx.test')),
      }).connect(clientFactory()),
    );
    assert.ok(failed instanceof DNSLookupError);
    assert.match(failed.message, /nx\.test/);
    const empty = await failureOf(
      new HostnameEndpoint(memory, 'empty.test', 80, { resolver: fixedResolver([]) }).connect(
        clientFactory(),
      ),
    );
    assert.ok(empty instanceof DNSLookupError);
    assert.equal(memory.tcpClients.length, 0);
  });

  test('cancel during resolution and during attempts', async () => {
    const memory = new MemoryReactor();
    const pending = new HostnameEndpoint(memory, 'slow.test', 80, {
      resolver: fixedResolver(null),
    }).connect(clientFactory());
    pending.cancel();
    assert.ok((await failureOf(pending)) instanceof ConnectingCancelledError);

    const racing = new HostnameEndpoint(memory, 'two.test', 80, {
      resolver: fixedResolver([v4('192.0.2.1'), v4('192.0.2.2')]),
    }).connect(clientFactory());
    await settle();
    memory.advance(0.3);
    assert.equal(memory.tcpClients.length, 2);
    racing.cancel();
    assert.ok(memory.tcpClients.every((c) => c.connector.state === 'disconnected'));
    assert.ok((await failureOf(racing)) instanceof ConnectingCancelledError);
    assert.equal(memory.getDelayedCalls().length, 0);
  });

  test('an IP literal is not resolved', async () => {
    const memory = new MemoryReactor();
    let asked = 0;
    const d = new HostnameEndpoint(memory, '192.0.2.7', 80, {
      resolver: () => {
        asked++;
        return Promise.resolve([]);
      },
    }).connect(clientFactory());
    assert.equal(asked, 0);
    assert.equal(memory.tcpClients[0]?.host, '192.0.2.7');
    memory.connectClient();
    await d;
  });

  test('bad arguments throw InvalidArgumentError', () => {
    assert.throws(() => new HostnameEndpoint(reactor, '', 80), InvalidArgumentError);
    assert.throws(() => new HostnameEndpoint(reactor, 'x', 0), InvalidArgumentError);
    assert.throws(
      () => new HostnameEndpoint(reactor, 'x', 80, { timeout: -1 }),
      InvalidArgumentError,
    );
    assert.throws(
      () => new HostnameEndpoint(reactor, 'x', 80, { attemptDelay: Number.NaN }),
      InvalidArgumentError,
    );
    assert.throws(
      () => new HostnameEndpoint(new MemoryReactor(), 'x', 80, { tls: {} }),
      /needs a reactor with connectSSL/,
    );
  });
});
