/**
 * STARTTLS, SMTP style: a line server that switches a plain TCP connection
 * to TLS when the client says `STARTTLS`, and a client that does so, in one
 * process.
 *
 *     npx tsx examples/starttls.ts
 *
 * It makes a throwaway self-signed certificate with `openssl` in a temporary
 * directory (removed at the end), listens on a free port of 127.0.0.1,
 * prints the exchange (`C:` client, `S:` server, `[tls]` once encrypted)
 * and exits 0.
 */

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LineReceiver } from '../src/protocols/basic.js';
import { ClientFactory, Factory } from '../src/protocols/protocol.js';
import type { IPv4Address } from '../src/reactor/address.js';
import type { Failure } from '../src/reactor/failure.js';
import type { IConnector, ITLSTransport } from '../src/reactor/interfaces.js';
import { reactor } from '../src/reactor/reactor.js';

const dir = mkdtempSync(join(tmpdir(), 'torsion-starttls-'));
// biome-ignore format: one openssl invocation
execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
  '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-subj', '/CN=localhost',
  '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
const key = readFileSync(join(dir, 'key.pem'));
const cert = readFileSync(join(dir, 'cert.pem'));

/** Both sides: lines in and out, logged; `tls()` is the transport's STARTTLS side. */
abstract class Talker extends LineReceiver {
  secure = false;
  upgrading = false;
  abstract readonly who: string;

  tls(): ITLSTransport {
    return this.transport as unknown as ITLSTransport;
  }

  say(line: string): void {
    const tag = this.secure ? '   [tls]' : this.upgrading ? '   [queued for tls]' : '';
    console.log(`${this.who}: ${line}${tag}`);
    this.sendLine(line);
  }

  /** Called by the transport once the STARTTLS handshake is done. */
  handshakeCompleted(): void {
    this.secure = true;
    const peer = this.tls().getPeerCertificate();
    console.log(`-- ${this.who} handshake done${peer ? `, server is CN=${peer.subject.CN}` : ''}`);
  }
}

class Server extends Talker {
  readonly who = 'S';

  override connectionMade(): void {
    this.say('220 localhost ready');
  }

  override lineReceived(line: Buffer): void {
    const command = line.toString();
    if (command.startsWith('EHLO')) {
      this.say(`250 hello ${this.secure ? 'over TLS' : 'in plaintext'}`);
    } else if (command === 'STARTTLS' && !this.secure) {
      this.say('220 go ahead');
      // Anything the client sent after the command is already TLS: hand it over.
      this.tls().startTLS({ isServer: true, key, cert, head: this.clearLineBuffer() });
    } else if (command === 'QUIT') {
      this.say('221 bye');
      this.transport.loseConnection();
    } else {
      this.say('500 what?');
    }
  }
}

class Client extends Talker {
  readonly who = 'C';

  override lineReceived(line: Buffer): void {
    const reply = line.toString();
    if (reply.startsWith('220 localhost')) {
      this.say('EHLO client');
    } else if (reply === '250 hello in plaintext') {
      this.say('STARTTLS');
    } else if (reply === '220 go ahead') {
      this.tls().startTLS({ ca: cert, servername: 'localhost' });
      this.upgrading = true;
      this.say('EHLO client'); // queued, sent encrypted after the handshake
    } else if (reply === '250 hello over TLS') {
      this.say('QUIT');
    }
  }

  override connectionLost(reason: Failure): void {
    console.log(`-- client done: ${reason.getErrorMessage()}`);
    finish(this.secure ? 0 : 1);
  }
}

const port = reactor.listenTCP(0, Factory.forProtocol(Server), { interface: '127.0.0.1' });

function finish(code: number): void {
  process.exitCode = code;
  port.stopListening();
  rmSync(dir, { recursive: true, force: true });
}

class Connect extends ClientFactory<Client> {
  override protocol = Client;

  override clientConnectionFailed(_connector: IConnector, reason: Failure): void {
    console.error(`could not connect: ${reason.getErrorMessage()}`);
    finish(1);
  }
}

const { port: portNumber } = port.getHost() as IPv4Address;
console.log(`-- server on 127.0.0.1:${portNumber}`);
reactor.connectTCP('127.0.0.1', portNumber, new Connect());
