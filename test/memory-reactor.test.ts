import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ClientCreator, ClientFactory, Factory, Protocol } from '../src/protocols/protocol.js';
import { Deferred } from '../src/reactor/deferred.js';
import {
  ConnectionRefusedError,
  InvalidArgumentError,
  NotConnectingError,
  ReactorAlreadyRunning,
  ReactorNotRunning,
  UserError,
} from '../src/reactor/errors.js';
import type { Failure } from '../src/reactor/failure.js';
import type { IConnector } from '../src/reactor/interfaces.js';
import { MemoryReactor } from '../src/testing/memory-reactor.js';
import type { StringTransport } from '../src/testing/string-transport.js';

class Hello extends Protocol {
  override connectionMade(): void {
    this.transport!.write('hello');
  }
}

class RecordingClientFactory extends ClientFactory<Hello> {
  failed: Failure[] = [];
  started = 0;
  constructor() {
    super();
    this.protocol = Hello;
  }
  override startedConnecting(_connector: IConnector): void {
    this.started++;
  }
  override clientConnectionFailed(_connector: IConnector, reason: Failure): void {
    this.failed.push(reason);
  }
}

describe('MemoryReactor', () => {
  test('records listenTCP and simulates an incoming connection', () => {
    const r = new MemoryReactor();
    const factory = Factory.forProtocol(Hello);
    const port = r.listenTCP(8080, factory, { interface: '127.0.0.1', backlog: 7 });
    assert.equal(r.tcpServers.length, 1);
    assert.equal(r.tcpServers[0].port, 8080);
    assert.equal(r.tcpServers[0].backlog, 7);
    assert.equal(r.tcpServers[0].interface, '127.0.0.1');
    assert.equal(port.getHost().type, 'TCP');
    const { protocol, transport } = r.acceptConnection<Hello, StringTransport>();
    assert.ok(protocol instanceof Hello);
    assert.equal(transport.value().toString(), 'hello');
    assert.throws(() => r.listenTCP(70000, factory), InvalidArgumentError);
  });

  test('records connectTCP; the test completes or fails the attempt', () => {
    const r = new MemoryReactor();
    const factory = new RecordingClientFactory();
    const connector = r.connectTCP('example.invalid', 25, factory, { timeout: 5 });
    assert.equal(r.tcpClients[0].host, 'example.invalid');
    assert.equal(r.tcpClients[0].timeout, 5);
    assert.equal(factory.started, 1);
    assert.equal(connector.state, 'connecting');
    const { protocol, transport } = r.connectClient<Hello, StringTransport>();
    assert.ok(protocol instanceof Hello);
    assert.equal(transport.value().toString(), 'hello');
    assert.equal(connector.state, 'connected');
    assert.throws(() => connector.stopConnecting(), NotConnectingError);

    r.connectTCP('127.0.0.1', 1, factory);
    r.failClient();
    assert.ok(factory.failed[0].value instanceof ConnectionRefusedError);
    const c3 = r.connectTCP('127.0.0.1', 2, factory);
    c3.stopConnecting();
    assert.ok(factory.failed[1].value instanceof UserError);
  });

  test('ClientCreator works against it', async () => {
    const r = new MemoryReactor();
    const d = new ClientCreator(r, Hello).connectTCP('h', 1);
    r.connectClient();
    const protocol = await d;
    assert.ok(protocol instanceof Hello);
  });

  test('run/stop fire startup and shutdown triggers in phase order and stop ports', () => {
    const r = new MemoryReactor();
    const order: string[] = [];
    r.addSystemEventTrigger('after', 'startup', () => order.push('after startup'));
    r.addSystemEventTrigger('before', 'startup', () => order.push('before startup'));
    r.callWhenRunning(() => order.push('running'));
    const port = r.listenTCP(0, Factory.forProtocol(Hello));
    const gate = new Deferred<void>();
    r.addSystemEventTrigger('before', 'shutdown', () => gate);
    r.addSystemEventTrigger('after', 'shutdown', () => order.push('after shutdown'));
    let stopped = false;
    r.run().addCallback(() => {
      stopped = true;
    });
    assert.throws(() => r.run(), ReactorAlreadyRunning);
    assert.deepEqual(order, ['before startup', 'after startup', 'running']);
    r.callWhenRunning(() => order.push('immediately'));
    r.stop();
    assert.throws(() => r.stop(), ReactorNotRunning);
    assert.equal(stopped, false, 'the before-shutdown Deferred holds the event');
    gate.callback(undefined);
    assert.ok(stopped);
    assert.ok((port as { stopped?: boolean }).stopped);
    assert.deepEqual(order.slice(3), ['immediately', 'after shutdown']);
    assert.equal(r.running, false);
  });

  test('is a Clock', () => {
    const r = new MemoryReactor();
    let ran = false;
    r.callLater(2, () => {
      ran = true;
    });
    r.advance(2);
    assert.ok(ran);
  });
});
