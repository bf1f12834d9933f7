/**
 * A TCP echo server: every byte a client sends comes back.
 *
 *     npx tsx examples/echo.ts [--port 8000] [--interface 127.0.0.1]
 *
 * It prints `echo server listening on HOST:PORT` once bound (`--port 0` picks
 * a free port) and stops on Ctrl-C (SIGINT) or SIGTERM.
 *
 * Flow control: each connection registers its own transport as the producer
 * of its writes, so a client that sends faster than it reads gets its reads
 * paused instead of growing the server's buffers.
 */

import { parseArgs } from 'node:util';
import { Factory, Protocol } from '../src/protocols/protocol.js';
import type { IPv4Address } from '../src/reactor/address.js';
import { err, msg } from '../src/reactor/log.js';
import { reactor } from '../src/reactor/reactor.js';

/** Writes back whatever it receives. */
export class Echo extends Protocol {
  override connectionMade(): void {
    // Reading is the producer of our writes: paused while the client lags.
    this.transport.registerProducer(this.transport, true);
  }

  override dataReceived(data: Buffer): void {
    this.transport.write(data);
  }
}

function main(): void {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', short: 'p', default: '8000' },
      interface: { type: 'string', short: 'i', default: '127.0.0.1' },
    },
  });
  const portNumber = Number(values.port);
  if (!Number.isInteger(portNumber) || portNumber < 0 || portNumber > 65535) {
    console.error(`invalid --port: ${values.port}`);
    process.exitCode = 2;
    return;
  }

  const port = reactor.listenTCP(portNumber, Factory.forProtocol(Echo), {
    interface: values.interface,
  });
  port.whenListening().addCallbacks(
    () => {
      const host = port.getHost() as IPv4Address;
      msg(`echo server listening on ${host.host}:${host.port}`);
    },
    (failure) => {
      err(failure, 'echo server could not start');
      process.exitCode = 1;
      if (reactor.running) reactor.stop();
    },
  );

  // run() returns a Deferred that fires once stop() (Ctrl-C) has shut the
  // reactor down; the port is closed by then. Close what is still connected.
  reactor.run().addCallback(() => {
    for (const transport of port.connections) transport.loseConnection();
    msg('echo server stopped');
  });
}

main();
