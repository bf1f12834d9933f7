/**
 * Address value objects returned by `getHost()` / `getPeer()` and passed to
 * `buildProtocol(addr)`, as Twisted's `IPv4Address`, `IPv6Address` and
 * `UNIXAddress`.
 *
 * @module
 */

import type { IAddress } from './interfaces.js';

/** An IPv4 endpoint. `type` is the transport kind: `'TCP'` or `'UDP'`. */
export class IPv4Address implements IAddress {
  constructor(
    readonly type: 'TCP' | 'UDP',
    readonly host: string,
    readonly port: number,
  ) {}

  toString(): string {
    return `IPv4Address(${this.type}, '${this.host}', ${this.port})`;
  }
}

/** An IPv6 endpoint. `host` carries no brackets. */
export class IPv6Address implements IAddress {
  constructor(
    readonly type: 'TCP' | 'UDP',
    readonly host: string,
    readonly port: number,
    readonly flowInfo = 0,
    readonly scopeId: number | string = 0,
  ) {}

  toString(): string {
    return `IPv6Address(${this.type}, '${this.host}', ${this.port})`;
  }
}

/** A UNIX-domain socket path (`name` is `null` for an unbound client end). */
export class UNIXAddress implements IAddress {
  readonly type = 'UNIX' as const;

  constructor(readonly name: string | null) {}

  toString(): string {
    return `UNIXAddress(${this.name === null ? 'None' : `'${this.name}'`})`;
  }
}

/** Any of the addresses above. */
export type Address = IPv4Address | IPv6Address | UNIXAddress;

/**
 * Builds the address for a socket's `address()`/`remoteAddress` fields.
 * IPv4-mapped IPv6 addresses stay IPv6, as the kernel reports them.
 */
export function inetAddress(
  type: 'TCP' | 'UDP',
  family: string | number | undefined,
  host: string | undefined,
  port: number | undefined,
): IPv4Address | IPv6Address {
  const h = host ?? '';
  const p = port ?? 0;
  if (family === 'IPv6' || family === 6) return new IPv6Address(type, h, p);
  return new IPv4Address(type, h, p);
}
