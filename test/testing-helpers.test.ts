import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  ConnectionAborted,
  ConnectionDone,
  ConnectionLost,
  ProducerAlreadyRegistered,
  TransportClosedError,
} from '../src/reactor/errors.js';
import type { Failure } from '../src/reactor/failure.js';
import type {
  IHalfCloseableProtocol,
  IPullProducer,
  IPushProducer,
  ITCPTransport,
  ITransport,
} from '../src/reactor/interfaces.js';
import { connectedServerAndClient } from '../src/testing/pump.js';
import {
  StringTransport,
  StringTransportWithDisconnection,
} from '../src/testing/string-transport.js';

/** Records everything that happens to it. */
class Recorder implements IHalfCloseableProtocol {
  transport: ITCPTransport | null = null;
  received: Buffer[] = [];
  lost: Failure[] = [];
  events: string[] = [];
  halfCloseable = true;
  makeConnection(transport: ITransport): void {
    this.transport = transport as ITCPTransport;
    this.connectionMade();
  }
  connectionMade(): void {
    this.events.push('made');
  }
  dataReceived(data: Buffer): void {
    this.received.push(data);
  }
  connectionLost(reason: Failure): void {
    this.lost.push(reason);
  }
  readConnectionLost(): void {
    this.events.push('readLost');
  }
  writeConnectionLost(): void {
    this.events.push('writeLost');
  }
  text(): string {
    return Buffer.concat(this.received).toString();
  }
}

class Greeter extends Recorder {
  override connectionMade(): void {
    super.connectionMade();
    this.transport!.write('hello\r\n');
  }
}

class Echo extends Recorder {
  override dataReceived(data: Buffer): void {
    super.dataReceived(data);
    this.transport!.write(data);
  }
}

describe('StringTransport', () => {
  test('records writes, producers and closes', () => {
    const t = new StringTransport();
    t.write('ab');
    t.write(new Uint8Array([99]));
    t.writeSequence(['d', Buffer.from('e')]);
    t.write('');
    assert.equal(t.value().toString(), 'abcde');
    t.clear();
    assert.equal(t.value().length, 0);
    const producer: IPushProducer = {
      pauseProducing() {},
      resumeProducing() {},
      stopProducing() {},
    };
    t.registerProducer(producer, true);
    assert.equal(t.producer, producer);
    assert.equal(t.streaming, true);
    assert.throws(() => t.registerProducer(producer, true), ProducerAlreadyRegistered);
    t.unregisterProducer();
    assert.equal(t.producer, null);
    t.pauseProducing();
    assert.equal(t.producerState, 'paused');
    t.resumeProducing();
    assert.equal(t.producerState, 'producing');
    t.loseConnection();
    assert.ok(t.disconnecting);
    assert.throws(() => t.write('late'), TransportClosedError);
    assert.throws(() => t.detach(), TransportClosedError);
  });

  test('WithDisconnection tells the protocol once', () => {
    const t = new StringTransportWithDisconnection();
    const p = new Recorder();
    t.protocol = p;
    p.makeConnection(t);
    t.loseConnection();
    t.loseConnection();
    t.abortConnection();
    assert.equal(p.lost.length, 1);
    assert.ok(p.lost[0].value instanceof ConnectionDone);
    const t2 = new StringTransportWithDisconnection();
    const p2 = new Recorder();
    t2.protocol = p2;
    t2.abortConnection();
    assert.ok(p2.lost[0].value instanceof ConnectionAborted);
  });
});

describe('connectedServerAndClient and IOPump', () => {
  test('greetings are exchanged on connect; echo round trip', () => {
    const { client, server, pump } = connectedServerAndClient<Greeter, Echo>(
      () => new Greeter(),
      () => new Echo(),
    );
    assert.equal(client.text(), 'hello\r\n');
    assert.equal(server.text(), 'hello\r\n', 'the client echoed the greeting');
    client.transport!.write('ping');
    assert.ok(pump.pump());
    assert.equal(server.text(), 'hello\r\nping');
  });

  test('chunkSize: 1 delivers one byte per dataReceived', () => {
    const { client, server, pump } = connectedServerAndClient<Recorder, Recorder>(
      () => new Recorder(),
      () => new Recorder(),
      { chunkSize: 1 },
    );
    client.transport!.write('abcdef');
    pump.flush();
    assert.equal(server.received.length, 6);
    assert.equal(server.text(), 'abcdef');
  });

  test('a paused reader receives nothing until resumed', () => {
    const { client, server, pump } = connectedServerAndClient<Recorder, Recorder>(
      () => new Recorder(),
      () => new Recorder(),
    );
    server.transport!.pauseProducing();
    client.transport!.write('held');
    pump.flush();
    assert.equal(server.text(), '');
    server.transport!.resumeProducing();
    pump.flush();
    assert.equal(server.text(), 'held');
  });

  test('a streaming producer is paused above the high-water mark and resumed on drain', () => {
    const { client, server, pump } = connectedServerAndClient<Recorder, Recorder>(
      () => new Recorder(),
      () => new Recorder(),
      { highWaterMark: 10 },
    );
    const calls: string[] = [];
    const producer: IPushProducer = {
      pauseProducing: () => calls.push('pause'),
      resumeProducing: () => calls.push('resume'),
      stopProducing: () => calls.push('stop'),
    };
    client.transport!.registerProducer(producer, true);
    client.transport!.write('0123456789abc');
    assert.deepEqual(calls, ['pause']);
    pump.pump();
    assert.deepEqual(calls, ['pause', 'resume']);
    assert.equal(server.text(), '0123456789abc');
  });

  test('a pull producer is asked once on registration and once per drain', () => {
    const { client, server, pump } = connectedServerAndClient<Recorder, Recorder>(
      () => new Recorder(),
      () => new Recorder(),
    );
    let sent = 0;
    const producer: IPullProducer = {
      resumeProducing() {
        if (sent === 3) {
          client.transport!.unregisterProducer();
          client.transport!.loseConnection();
          return;
        }
        client.transport!.write(`chunk${sent++};`);
      },
      stopProducing() {},
    };
    client.transport!.registerProducer(producer, false);
    pump.flush();
    assert.equal(server.text(), 'chunk0;chunk1;chunk2;');
    assert.ok(server.lost[0].value instanceof ConnectionDone);
    assert.ok(client.lost[0].value instanceof ConnectionDone);
  });

  test('loseConnection delivers queued bytes, then ConnectionDone to both sides once', () => {
    const { client, server, pump } = connectedServerAndClient<Recorder, Recorder>(
      () => new Recorder(),
      () => new Recorder(),
    );
    client.transport!.write('last words');
    client.transport!.loseConnection();
    assert.throws(() => client.transport!.write('more'), TransportClosedError);
    pump.flush();
    pump.flush();
    assert.equal(server.text(), 'last words');
    assert.equal(server.lost.length, 1);
    assert.equal(client.lost.length, 1);
  });

  test('half-close: readConnectionLost on the peer, which can still write back', () => {
    const { client, server, pump } = connectedServerAndClient<Recorder, Recorder>(
      () => new Recorder(),
      () => new Recorder(),
    );
    client.transport!.write('request');
    client.transport!.loseWriteConnection();
    pump.flush();
    assert.deepEqual(server.events, ['made', 'readLost']);
    assert.deepEqual(client.events, ['made', 'writeLost']);
    server.transport!.write('response');
    server.transport!.loseConnection();
    pump.flush();
    assert.equal(client.text(), 'response');
    assert.equal(client.lost.length, 1);
  });

  test('abortConnection drops queued bytes; breakConnection injects a failure', () => {
    const a = connectedServerAndClient<Recorder, Recorder>(
      () => new Recorder(),
      () => new Recorder(),
    );
    a.client.transport!.write('dropped');
    a.client.transport!.abortConnection();
    a.pump.flush();
    assert.equal(a.server.text(), '');
    assert.ok(a.client.lost[0].value instanceof ConnectionAborted);
    assert.ok(a.server.lost[0].value instanceof ConnectionLost);

    const b = connectedServerAndClient<Recorder, Recorder>(
      () => new Recorder(),
      () => new Recorder(),
    );
    b.pump.breakConnection();
    assert.equal(b.client.lost.length, 1);
    assert.equal(b.server.lost.length, 1);
    assert.ok(b.server.lost[0].value instanceof ConnectionLost);
  });
});
