/**
 * A multi-user, line-based chat server: everyone connected shares one room.
 *
 *     npx tsx examples/chat.ts [--port 8023] [--max-buffer 262144]
 *     telnet 127.0.0.1 8023        (or: nc 127.0.0.1 8023)
 *
 * Commands: `/nick NAME` (join, or change your name), `/who`, `/help`,
 * `/quit`. Any other line is sent to everyone else as `<nick> text`. Joins,
 * renames and departures are announced as `* …` lines.
 *
 * It prints `chat server listening on 127.0.0.1:PORT` once bound (`--port 0`
 * picks a free port) and stops on Ctrl-C (SIGINT) or SIGTERM.
 *
 * Send-buffer policy: one client that stops reading must not make the server
 * buffer without bound, nor slow anyone else down. Every line to a client is
 * checked against that client's unsent bytes (`transport.bufferedAmount`):
 * once they would pass `--max-buffer` (default 256 KiB), the client is
 * dropped (`abortConnection()`: its unsent data is discarded) and the room is
 * told. The other clients' writes are independent of it.
 *
 * The room, protocol and factory are exported so a test can mount the server
 * on any port without spawning this script.
 */

import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { LineReceiver } from '../src/protocols/basic.js';
import { ServerFactory } from '../src/protocols/protocol.js';
import { IPv4Address, IPv6Address } from '../src/reactor/address.js';
import { InvalidArgumentError } from '../src/reactor/errors.js';
import type { Failure } from '../src/reactor/failure.js';
import type { IAddress } from '../src/reactor/interfaces.js';
import { err, msg } from '../src/reactor/log.js';
import { reactor } from '../src/reactor/reactor.js';

/** Default limit of unsent bytes per client before it is dropped (256 KiB). */
export const DEFAULT_MAX_BUFFERED = 256 * 1024;

const NICK = /^[A-Za-z0-9_-]{1,32}$/;
const LF = Buffer.from('\n');
const CRLF = '\r\n';

function describe(addr: IAddress): string {
  if (addr instanceof IPv4Address) return `${addr.host}:${addr.port}`;
  if (addr instanceof IPv6Address) return `[${addr.host}]:${addr.port}`;
  return String(addr);
}

/** The shared room: who is in it, and delivery with the send-buffer policy. */
export class ChatRoom {
  /** Members with a nick, in joining order. */
  readonly members = new Set<ChatProtocol>();
  /** Unsent bytes a client may have before it is dropped. */
  readonly maxBuffered: number;
  /** How many clients were dropped for not reading. */
  dropped = 0;

  /** @throws InvalidArgumentError if `maxBuffered` is not a positive integer. */
  constructor(maxBuffered = DEFAULT_MAX_BUFFERED) {
    if (!Number.isInteger(maxBuffered) || maxBuffered <= 0) {
      throw new InvalidArgumentError(`maxBuffered must be a positive integer: ${maxBuffered}`);
    }
    this.maxBuffered = maxBuffered;
  }

  /** The member called `nick` (case-insensitive), if any. */
  find(nick: string): ChatProtocol | undefined {
    const wanted = nick.toLowerCase();
    for (const member of this.members) {
      if (member.nick?.toLowerCase() === wanted) return member;
    }
    return undefined;
  }

  /** Sends `text` (one line) to every member except `except`. The line is encoded once. */
  broadcast(text: string, except: ChatProtocol | null = null): void {
    const line = Buffer.from(text + CRLF);
    for (const member of this.members) {
      if (member !== except) this.deliver(member, line);
    }
  }

  /**
   * Writes `line` to `client`, or drops the client if that would put more
   * than `maxBuffered` bytes in its send buffer. Returns whether it was sent.
   */
  deliver(client: ChatProtocol, line: Buffer): boolean {
    const transport = client.transport;
    if (client.droppedForLag || transport.disconnecting) return false;
    if (transport.bufferedAmount + line.length > this.maxBuffered) {
      this.#drop(client);
      return false;
    }
    transport.write(line);
    return true;
  }

  #drop(client: ChatProtocol): void {
    this.dropped++;
    client.droppedForLag = true;
    // Leave the room now so that nothing more is queued for it; the others
    // hear about it from connectionLost, after the current broadcast.
    this.members.delete(client);
    msg(
      `chat: dropping ${client.nick ?? '(no nick)'} at ${describe(client.transport.getPeer())}: ` +
        `${client.transport.bufferedAmount} bytes unread`,
    );
    client.transport.abortConnection();
  }
}

/** One chat client. */
export class ChatProtocol extends LineReceiver {
  /** The client's nick, once it has chosen one (`/nick`). */
  nick: string | null = null;
  /** Set when the room dropped the client for not reading. */
  droppedForLag = false;
  readonly room: ChatRoom;

  constructor(room: ChatRoom) {
    super();
    this.room = room;
    // Lines end in \n; a \r before it (telnet) is stripped in lineReceived.
    this.delimiter = LF;
    this.MAX_LENGTH = 4096;
  }

  override connectionMade(): void {
    this.send('* Welcome! Choose a nick with /nick NAME (/help for commands).');
  }

  override lineReceived(raw: Buffer): void {
    const end = raw.length > 0 && raw[raw.length - 1] === 0x0d ? raw.length - 1 : raw.length;
    const line = raw.toString('utf8', 0, end);
    if (line.startsWith('/')) {
      this.#command(line);
    } else if (line.length === 0) {
      // Ignore empty lines.
    } else if (this.nick === null) {
      this.send('* Choose a nick first: /nick NAME');
    } else {
      this.room.broadcast(`<${this.nick}> ${line}`, this);
    }
  }

  override lineLengthExceeded(_line: Buffer): void {
    this.send(`* Line too long (max ${this.MAX_LENGTH} bytes); bye.`);
    this.transport.loseConnection();
  }

  override connectionLost(reason: Failure): void {
    const nick = this.nick;
    const wasMember = this.room.members.delete(this) || this.droppedForLag;
    if (nick === null || !wasMember) return;
    const why = this.droppedForLag ? ' (dropped: not reading)' : '';
    this.room.broadcast(`* ${nick} has left${why}`);
    if (!this.droppedForLag && reason.value.name !== 'ConnectionDone') {
      msg(`chat: ${nick} lost: ${reason.getErrorMessage()}`);
    }
  }

  /** Sends one line to this client, under the room's send-buffer policy. */
  send(text: string): void {
    this.room.deliver(this, Buffer.from(text + CRLF));
  }

  #command(line: string): void {
    const space = line.indexOf(' ');
    const name = (space === -1 ? line : line.slice(0, space)).toLowerCase();
    const arg = space === -1 ? '' : line.slice(space + 1).trim();
    switch (name) {
      case '/nick':
        this.#setNick(arg);
        return;
      case '/who': {
        const nicks = [...this.room.members].map((m) => m.nick);
        this.send(`* In the room: ${nicks.length === 0 ? 'nobody' : nicks.join(', ')}`);
        return;
      }
      case '/help':
        this.send('* /nick NAME: choose or change your nick; /who: who is here; /quit: leave');
        return;
      case '/quit':
        this.send('* Bye!');
        this.transport.loseConnection();
        return;
      default:
        this.send(`* Unknown command ${name}; try /help`);
    }
  }

  #setNick(nick: string): void {
    if (!NICK.test(nick)) {
      this.send('* A nick is 1 to 32 letters, digits, _ or -');
      return;
    }
    const holder = this.room.find(nick);
    if (holder !== undefined && holder !== this) {
      this.send(`* ${nick} is taken`);
      return;
    }
    const old = this.nick;
    this.nick = nick;
    if (old === null) {
      this.room.members.add(this);
      this.send(`* You are ${nick}. ${this.room.members.size} in the room.`);
      this.room.broadcast(`* ${nick} has joined`, this);
    } else {
      this.send(`* You are now ${nick}`);
      this.room.broadcast(`* ${old} is now known as ${nick}`, this);
    }
  }
}

/** Makes a {@link ChatProtocol} per connection, all in one {@link ChatRoom}. */
export class ChatFactory extends ServerFactory<ChatProtocol> {
  readonly room: ChatRoom;

  constructor(room: ChatRoom = new ChatRoom()) {
    super();
    this.room = room;
  }

  override buildProtocol(_addr: IAddress): ChatProtocol {
    const protocol = new ChatProtocol(this.room);
    protocol.factory = this;
    return protocol;
  }
}

function main(): void {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', short: 'p', default: '8023' },
      'max-buffer': { type: 'string', default: String(DEFAULT_MAX_BUFFERED) },
    },
  });
  const portNumber = Number(values.port);
  if (!Number.isInteger(portNumber) || portNumber < 0 || portNumber > 65535) {
    console.error(`invalid --port: ${values.port}`);
    process.exitCode = 2;
    return;
  }
  const maxBuffered = Number(values['max-buffer']);
  if (!Number.isInteger(maxBuffered) || maxBuffered <= 0) {
    console.error(`invalid --max-buffer: ${values['max-buffer']}`);
    process.exitCode = 2;
    return;
  }

  const factory = new ChatFactory(new ChatRoom(maxBuffered));
  const port = reactor.listenTCP(portNumber, factory, { interface: '127.0.0.1' });
  port.whenListening().addCallbacks(
    () => {
      msg(`chat server listening on ${describe(port.getHost())}`);
    },
    (failure) => {
      err(failure, 'chat server could not start');
      process.exitCode = 1;
      if (reactor.running) reactor.stop();
    },
  );

  // run() fires once stop() (Ctrl-C) has shut the reactor down and closed
  // the port; say goodbye to whoever is still connected.
  reactor.run().addCallback(() => {
    for (const transport of port.connections) {
      if (!transport.disconnecting) transport.write(`* Server shutting down${CRLF}`);
      transport.loseConnection();
    }
    msg('chat server stopped');
  });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main();
}
