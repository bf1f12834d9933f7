/**
 * UDP: listenUDP / UDPPort / DatagramProtocol on real sockets (127.0.0.1,
 * ::1 when the host has it): echo, connected UDP, address checks, errors,
 * stopListening, multicast on the loopback interface, reactor shutdown.
 */

import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, describe, test } from 'node:test';
import { DatagramProtocol } from '../src/protocols/datagram.js';
import type { IPv4Address, IPv6Address } from '../src/reactor/address.js';
import { Deferred } from '../src/reactor/deferred.js';
import {
  CannotListenError,
  InvalidArgumentError,
  TransportClosedError,
} from '../src/reactor/errors.js';
import type { DatagramAddress, ListenUDPOptions } from '../src/reactor/interfaces.js';
import { addObserver, type LogEvent } from '../src/reactor/log.js';
import { NodeReactor, reactor } from '../src/reactor/reactor.js';
import {
  AlreadyConnectedError,
  DatagramSendError,
  DestinationRequiredError,
  listenUDP,
  MessageLengthError,
  MulticastJoinError,
  type UDPPort,
} from '../src/reactor/udp.js';

const LOCAL: ListenUDPOptions = { interface: '127.0.0.1' };

/** Every port a test opens, closed after the file. */
const open: UDPPort[] = [];
after(async () => {
  for (const port of open) await port.stopListening();
});

function listen(protocol: DatagramProtocol, options = LOCAL, port = 0): UDPPort {
  const p = listenUDP(reactor, port, protocol, options);
  open.push(p);
  return p;
}

function addrOf(port: UDPPort): DatagramAddress {
  const host = port.getHost();
  return [host.host, host.port];
}

/** Records datagrams; `next()` resolves with the next one. */
class Recorder extends DatagramProtocol {
  readonly received: Array<[Buffer, DatagramAddress]> = [];
  readonly events: string[] = [];
  refused = 0;
  #waiters: Array<(d: [Buffer, DatagramAddress]) => void> = [];
  #queue: Array<[Buffer, DatagramAddress]> = [];
  readonly refusedOnce = new Deferred<void>();

  override startProtocol(): void {
    this.events.push('start');
  }

  override stopProtocol(): void {
    this.events.push('stop');
  }

  override datagramReceived(data: Buffer, addr: DatagramAddress): void {
    const item: [Buffer, DatagramAddress] = [data, addr];
    this.received.push(item);
    const waiter = this.#waiters.shift();
    if (waiter) waiter(item);
    else this.#queue.push(item);
  }

  override connectionRefused(): void {
    this.refused++;
    if (!this.refusedOnce.called) this.refusedOnce.callback(undefined);
  }

  next(): Promise<[Buffer, DatagramAddress]> {
    const item = this.#queue.shift();
    if (item) return Promise.resolve(item);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}

class Echo extends DatagramProtocol {
  override datagramReceived(data: Buffer, addr: DatagramAddress): void {
    this.transport.write(data, addr);
  }
}

/** Captures log errors while `fn` runs. */
async function capturingLog<T>(fn: (events: LogEvent[]) => Promise<T>): Promise<T> {
  const events: LogEvent[] = [];
  const remove = addObserver((e) => events.push(e));
  try {
    return await fn(events);
  } finally {
    remove();
  }
}

/**
 * `assert.ok(value instanceof type)` with a message: a failing `assert.ok`
 * without one makes Node re-parse the (tsx-compiled) source, which can hang.
 */
function isA<T>(value: unknown, type: abstract new (...args: never[]) => T): asserts value is T {
  const got = value as { constructor?: { name?: string }; message?: string } | null;
  assert.ok(
    value instanceof type,
    `expected a ${type.name}, got ${got?.constructor?.name}: ${got?.message ?? String(value)}`,
  );
}

function ipv6Available(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp6');
    s.once('error', () => {
      s.close();
      resolve(false);
    });
    s.bind(0, '::1', () => {
      s.close();
      resolve(true);
    });
  });
}

// ---------------------------------------------------------------------- tests

describe('listenUDP', () => {
  test('binds before returning: real port known, protocol started', () => {
    const proto = new Recorder();
    const port = listen(proto);
    const host = port.getHost() as IPv4Address;
    assert.equal(host.type, 'UDP');
    assert.equal(host.host, '127.0.0.1');
    assert.ok(host.port > 0, 'a real port');
    assert.deepEqual(proto.events, ['start']);
    assert.equal(proto.transport, port);
    assert.equal(port.whenListening().called, true);
  });

  test('echo: datagrams and their source addresses', async () => {
    const server = listen(new Echo());
    const client = new Recorder();
    const clientPort = listen(client);
    clientPort.write('hello', addrOf(server));
    clientPort.write(Buffer.from([0, 1, 2, 255]), addrOf(server));
    const [first, from] = await client.next();
    const [second] = await client.next();
    assert.equal(first.toString(), 'hello');
    assert.deepEqual(second, Buffer.from([0, 1, 2, 255]));
    assert.deepEqual(from, addrOf(server));
  });

  test('an empty write sends an empty datagram', async () => {
    const server = new Recorder();
    const serverPort = listen(server);
    const clientPort = listen(new DatagramProtocol());
    clientPort.write('', addrOf(serverPort));
    const [data, from] = await server.next();
    assert.equal(data.length, 0);
    assert.deepEqual(from, addrOf(clientPort));
  });

  test('largest IPv4 datagram goes through; one byte more is MessageLengthError', async () => {
    const server = new Recorder();
    const serverPort = listen(server);
    const clientPort = listen(new DatagramProtocol());
    clientPort.write(Buffer.alloc(65507, 7), addrOf(serverPort));
    const [data] = await server.next();
    assert.equal(data.length, 65507);
    assert.throws(
      () => clientPort.write(Buffer.alloc(65508), addrOf(serverPort)),
      (e: unknown) =>
        e instanceof MessageLengthError &&
        e.code === 'TORSION_ERR_MESSAGE_LENGTH' &&
        e.length === 65508 &&
        e.maxLength === 65507,
    );
    // A string's length is counted in UTF-8 bytes.
    assert.throws(
      () => clientPort.write('é'.repeat(32754), addrOf(serverPort)),
      MessageLengthError,
    );
  });

  test('maxPacketSize truncates longer datagrams', async () => {
    const server = new Recorder();
    const serverPort = listen(server, { ...LOCAL, maxPacketSize: 4 });
    const clientPort = listen(new DatagramProtocol());
    clientPort.write('abcdefgh', addrOf(serverPort));
    clientPort.write('xy', addrOf(serverPort));
    assert.equal((await server.next())[0].toString(), 'abcd');
    assert.equal((await server.next())[0].toString(), 'xy');
  });

  test('write without an address on an unconnected socket: DestinationRequiredError', () => {
    const port = listen(new DatagramProtocol());
    assert.throws(
      () => port.write('x'),
      (e: unknown) =>
        e instanceof DestinationRequiredError && e.code === 'TORSION_ERR_DESTINATION_REQUIRED',
    );
  });

  test('addresses must be IP literals of the socket family, ports 1-65535', () => {
    const port = listen(new DatagramProtocol());
    assert.throws(() => port.write('x', ['localhost', 9]), InvalidArgumentError);
    assert.throws(() => port.write('x', ['::1', 9]), InvalidArgumentError);
    assert.throws(() => port.write('x', ['127.0.0.1', 0]), InvalidArgumentError);
    assert.throws(() => port.write('x', ['127.0.0.1', 70000]), InvalidArgumentError);
    assert.throws(() => port.write('x', ['127.0.0.1', 1.5]), InvalidArgumentError);
    assert.throws(() => port.connect('localhost', 9), InvalidArgumentError);
    assert.throws(() => port.connect('127.0.0.1', 0), InvalidArgumentError);
  });

  test('bad listen arguments throw InvalidArgumentError and open nothing', () => {
    const proto = new Recorder();
    assert.throws(() => listenUDP(reactor, -1, proto, LOCAL), InvalidArgumentError);
    assert.throws(() => listenUDP(reactor, 65536, proto, LOCAL), InvalidArgumentError);
    assert.throws(
      () => listenUDP(reactor, 0, proto, { interface: 'localhost' }),
      InvalidArgumentError,
    );
    assert.throws(
      () => listenUDP(reactor, 0, proto, { ...LOCAL, maxPacketSize: 0 }),
      InvalidArgumentError,
    );
    assert.deepEqual(proto.events, []);
  });

  test('a port in use: whenListening fails with CannotListenError, protocol never started', async () => {
    const first = listen(new DatagramProtocol());
    const proto = new Recorder();
    const second = listenUDP(reactor, (first.getHost() as IPv4Address).port, proto, LOCAL);
    const failure = await second
      .whenListening()
      .asPromise()
      .then(
        () => assert.fail('bound twice'),
        (f) => f,
      );
    isA(failure, CannotListenError);
    assert.equal(failure.code, 'TORSION_ERR_CANNOT_LISTEN');
    assert.match(failure.message, /EADDRINUSE/);
    assert.deepEqual(proto.events, []);
    // Reported: later calls fail at once; writes are refused; stopListening is a no-op.
    assert.equal(second.whenListening().called, true);
    await assert.rejects(second.whenListening().asPromise(), CannotListenError);
    assert.throws(() => second.write('x', addrOf(first)), TransportClosedError);
    await second.stopListening();
  });

  test('an unobserved bind failure is logged, not thrown', async () => {
    const first = listen(new DatagramProtocol());
    await capturingLog(async (events) => {
      listenUDP(reactor, (first.getHost() as IPv4Address).port, new DatagramProtocol(), LOCAL);
      await new Promise((r) => setImmediate(r));
      assert.equal(events.length, 1);
      assert.match(events[0].message, /UDP port could not listen/);
      isA(events[0].failure?.value, CannotListenError);
    });
  });

  test('the error event reports a bind failure', async () => {
    const first = listen(new DatagramProtocol());
    const second = listenUDP(reactor, (first.getHost() as IPv4Address).port, new Recorder(), LOCAL);
    const error = await new Promise<CannotListenError>((resolve) => second.on('error', resolve));
    isA(error, CannotListenError);
  });

  test('stopListening: stops delivery, then stopProtocol, close event, Deferreds', async () => {
    const proto = new Recorder();
    const port = listenUDP(reactor, 0, proto, LOCAL);
    const sender = listen(new DatagramProtocol());
    sender.write('before', addrOf(port));
    assert.equal((await proto.next())[0].toString(), 'before');
    let closed = 0;
    port.on('close', () => closed++);
    const d1 = port.stopListening();
    const d2 = port.stopListening();
    assert.deepEqual(proto.events, ['start']); // doStop waits for the next turn
    assert.throws(() => port.write('x', addrOf(sender)), TransportClosedError);
    assert.throws(() => port.connect('127.0.0.1', 9), TransportClosedError);
    assert.throws(() => port.setTTL(2), TransportClosedError);
    assert.throws(() => port.joinGroup('239.255.0.1'), TransportClosedError);
    await d1;
    assert.equal(d2.called, true);
    assert.deepEqual(proto.events, ['start', 'stop']);
    assert.equal(closed, 1);
    assert.equal(port.stopListening().called, true);
    assert.equal(proto.received.length, 1);
  });

  test('one protocol on two ports: started once, stopped after the last port', async () => {
    const proto = new Recorder();
    const a = listenUDP(reactor, 0, proto, LOCAL);
    const b = listenUDP(reactor, 0, proto, LOCAL);
    assert.deepEqual(proto.events, ['start']);
    assert.equal(proto.numPorts, 2);
    await a.stopListening();
    assert.deepEqual(proto.events, ['start']);
    await b.stopListening();
    assert.deepEqual(proto.events, ['start', 'stop']);
  });

  test('an exception in datagramReceived is logged and the port goes on', async () => {
    class Throws extends Recorder {
      override datagramReceived(data: Buffer, addr: DatagramAddress): void {
        super.datagramReceived(data, addr);
        if (data.toString() === 'boom') throw new Error('boom');
      }
    }
    await capturingLog(async (events) => {
      const proto = new Throws();
      const port = listen(proto);
      const sender = listen(new DatagramProtocol());
      sender.write('boom', addrOf(port));
      sender.write('after', addrOf(port));
      await proto.next();
      assert.equal((await proto.next())[0].toString(), 'after');
      assert.equal(events.length, 1);
      assert.match(events[0].message, /datagramReceived/);
    });
  });

  test('a send the kernel refuses later is a sendError event (or logged), not a crash', async () => {
    const port = listen(new DatagramProtocol());
    // No SO_BROADCAST: the kernel answers EACCES; nothing leaves the host.
    port.write('x', ['255.255.255.255', 9]);
    const error = await new Promise<DatagramSendError>((resolve) =>
      port.once('sendError', resolve),
    );
    isA(error, DatagramSendError);
    assert.equal(error.code, 'TORSION_ERR_DATAGRAM_SEND');
    assert.equal(error.errorCode, 'EACCES');
    assert.equal(error.host, '255.255.255.255');
    assert.equal(error.port, 9);
    await capturingLog(async (events) => {
      port.write('x', ['255.255.255.255', 9]);
      while (events.length === 0) await new Promise((r) => setImmediate(r));
      isA(events[0].failure?.value, DatagramSendError);
    });
  });

  test('setBroadcastAllowed / getBroadcastAllowed', () => {
    const port = listen(new DatagramProtocol());
    assert.equal(port.getBroadcastAllowed(), false);
    port.setBroadcastAllowed(true);
    assert.equal(port.getBroadcastAllowed(), true);
    port.setBroadcastAllowed(false);
    assert.equal(port.getBroadcastAllowed(), false);
  });
});

describe('connected UDP', () => {
  test('write needs no address; only the peer is heard', async () => {
    const server = new Recorder();
    const serverPort = listen(server);
    const client = new Recorder();
    const clientPort = listen(client);
    clientPort.connect(...addrOf(serverPort));
    clientPort.write('no address');
    clientPort.write('same address', addrOf(serverPort));
    assert.equal((await server.next())[0].toString(), 'no address');
    const [, from] = await server.next();
    assert.deepEqual(from, addrOf(clientPort));

    // A stranger's datagram, sent (and queued by the kernel, or dropped)
    // before the peer's: only the peer's is delivered.
    const stranger = dgram.createSocket('udp4');
    await new Promise<void>((r) => stranger.bind(0, '127.0.0.1', r));
    const [clientHost, clientPortNumber] = addrOf(clientPort);
    await new Promise((r) => stranger.send('stranger', clientPortNumber, clientHost, r));
    stranger.close();
    serverPort.write('from peer', addrOf(clientPort));
    const [data, source] = await client.next();
    assert.equal(data.toString(), 'from peer');
    assert.deepEqual(source, addrOf(serverPort));
    assert.equal(client.received.length, 1);
  });

  test('writing elsewhere or connecting twice is refused', () => {
    const a = listen(new DatagramProtocol());
    const b = listen(new DatagramProtocol());
    const client = listen(new DatagramProtocol());
    client.connect(...addrOf(a));
    assert.throws(() => client.write('x', addrOf(b)), InvalidArgumentError);
    assert.throws(
      () => client.connect(...addrOf(b)),
      (e: unknown) =>
        e instanceof AlreadyConnectedError && e.code === 'TORSION_ERR_ALREADY_CONNECTED',
    );
  });

  test('a refused datagram calls connectionRefused()', async () => {
    const gone = listenUDP(reactor, 0, new DatagramProtocol(), LOCAL);
    const deadAddr = addrOf(gone);
    await gone.stopListening();
    const client = new Recorder();
    const clientPort = listen(client);
    clientPort.connect(...deadAddr);
    // The first send provokes the ICMP answer; a later send or read reports it.
    // Bounded: the kernel answers the first datagram on loopback.
    for (let i = 0; i < 50 && !client.refusedOnce.called; i++) {
      clientPort.write('anyone?');
      await new Promise((r) => setImmediate(r));
    }
    await client.refusedOnce;
    assert.ok(client.refused >= 1, 'connectionRefused called');
  });
});

describe('multicast', () => {
  test('options: TTL, loopback, outgoing interface', async () => {
    const port = listen(new DatagramProtocol());
    assert.equal(port.getTTL(), 1);
    port.setTTL(0);
    assert.equal(port.getTTL(), 0);
    assert.throws(() => port.setTTL(256), InvalidArgumentError);
    assert.throws(() => port.setTTL(-1), InvalidArgumentError);
    assert.equal(port.getLoopbackMode(), true);
    port.setLoopbackMode(false);
    assert.equal(port.getLoopbackMode(), false);
    port.setLoopbackMode(true);
    assert.equal(port.getOutgoingInterface(), '');
    await port.setOutgoingInterface('127.0.0.1');
    assert.equal(port.getOutgoingInterface(), '127.0.0.1');
    await assert.rejects(port.setOutgoingInterface('not-an-ip').asPromise(), MulticastJoinError);
    assert.equal(port.getOutgoingInterface(), '127.0.0.1');
  });

  test('join/leave errors are MulticastJoinError failures', async () => {
    const port = listen(new DatagramProtocol());
    await assert.rejects(
      port.joinGroup('127.0.0.1').asPromise(),
      (e: unknown) =>
        e instanceof MulticastJoinError &&
        e.code === 'TORSION_ERR_MULTICAST' &&
        e.group === '127.0.0.1' &&
        /EINVAL/.test(e.message),
    );
    await assert.rejects(
      port.leaveGroup('239.255.77.1', '127.0.0.1').asPromise(),
      MulticastJoinError,
    );
    await port.joinGroup('239.255.77.1', '127.0.0.1');
    await assert.rejects(
      port.joinGroup('239.255.77.1', '127.0.0.1').asPromise(),
      MulticastJoinError,
    );
    await port.leaveGroup('239.255.77.1', '127.0.0.1');
    await assert.rejects(
      port.leaveGroup('239.255.77.1', '127.0.0.1').asPromise(),
      MulticastJoinError,
    );
  });

  test('a datagram to a joined group arrives over the loopback interface', async () => {
    // The receiver binds the group address itself (not a wildcard) and joins
    // on 127.0.0.1; the sender uses TTL 0: nothing leaves this host.
    const group = '239.255.77.2';
    const receiver = new Recorder();
    const receiverPort = listen(receiver, { interface: group, listenMultiple: true });
    await receiverPort.joinGroup(group, '127.0.0.1');
    const sender = listen(new DatagramProtocol());
    await sender.setOutgoingInterface('127.0.0.1');
    sender.setTTL(0);
    sender.setLoopbackMode(true);
    sender.write('to the group', [group, receiverPort.getHost().port]);
    const [data, from] = await receiver.next();
    assert.equal(data.toString(), 'to the group');
    assert.deepEqual(from, addrOf(sender));
    await receiverPort.leaveGroup(group, '127.0.0.1');
  });
});

describe('IPv6', () => {
  test('echo over ::1', async (t) => {
    if (!(await ipv6Available())) {
      t.skip('::1 is not available on this host (binding a udp6 socket to it failed)');
      return;
    }
    const server = listen(new Echo(), { interface: '::1' });
    const host = server.getHost() as IPv6Address;
    assert.equal(host.constructor.name, 'IPv6Address');
    assert.equal(host.type, 'UDP');
    assert.equal(host.host, '::1');
    const client = new Recorder();
    const clientPort = listen(client, { interface: '::1' });
    assert.throws(() => clientPort.write('x', ['127.0.0.1', host.port]), InvalidArgumentError);
    clientPort.write('over v6', ['::1', host.port]);
    const [data, from] = await client.next();
    assert.equal(data.toString(), 'over v6');
    assert.deepEqual(from, ['::1', host.port]);
    clientPort.write(Buffer.alloc(65527), ['::1', host.port]);
    assert.equal((await client.next())[0].length, 65527);
    assert.throws(
      () => clientPort.write(Buffer.alloc(65528), ['::1', host.port]),
      MessageLengthError,
    );

    // Connected to a non-canonical spelling of ::1: the peer's datagrams
    // (reported as '::1') are still recognised.
    const connected = new Recorder();
    const connectedPort = listen(connected, { interface: '::1' });
    connectedPort.connect('0:0:0:0:0:0:0:1', host.port);
    connectedPort.write('connected v6', ['0:0:0:0:0:0:0:1', host.port]);
    const [echoed, source] = await connected.next();
    assert.equal(echoed.toString(), 'connected v6');
    assert.deepEqual(source, ['::1', host.port]);
  });
});

describe('reactor.listenUDP', () => {
  test('ports are stopped during reactor shutdown', async () => {
    const r = new NodeReactor();
    const proto = new Recorder();
    const port = r.listenUDP(0, proto, LOCAL);
    assert.ok(port.getHost().port > 0, 'a real port');
    const stopped = r.run({ installSignalHandlers: false });
    r.stop();
    await stopped;
    assert.deepEqual(proto.events, ['start', 'stop']);
    assert.throws(() => port.write('x', ['127.0.0.1', 9]), TransportClosedError);
  });
});
