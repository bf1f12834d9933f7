/**
 * `serverFromString` and `clientFromString`: endpoints from Twisted's
 * description strings.
 *
 * Syntax (Twisted's): `type:arg:arg:key=value:…`. Segments are separated
 * by `:`; a segment with `=` is a keyword argument (only its first `=`
 * counts: the value may hold more), any other a positional one, taken in
 * the order each type lists below. A backslash makes the next character
 * literal, so `\:` and `\=` put colons and equals signs in values (an IPv6
 * address: `interface=\:\:1`).
 *
 * Servers:
 * - `tcp:PORT[:interface=IP][:backlog=N]`, also `tcp6:` (interface `::`)
 * - `unix:PATH[:mode=OCTAL][:backlog=N][:lockfile=0|1]` (mode default `666`;
 *   `lockfile=1`, the default, removes a stale socket file)
 * - `ssl:PORT:privateKey=KEY.pem[:certKey=CERT.pem][:interface=IP][:backlog=N]
 *   [:extraCertChain=CHAIN.pem][:dhParameters=DH.pem][:sslmethod=TLSv1_2_METHOD]`
 *   (`privateKey` defaults to `server.pem`, `certKey` to `privateKey`: one
 *   PEM with both; the files are read when the string is parsed)
 *
 * Clients:
 * - `tcp:HOST:PORT` or `tcp:host=HOST:port=PORT[:timeout=S][:bindAddress=IP]`,
 *   also `tcp6:`
 * - `unix:PATH` or `unix:path=PATH[:timeout=S]`
 * - `tls:HOST:PORT[:timeout=S][:bindAddress=IP][:trustRoots=FILE|DIR]
 *   [:certificate=CERT.pem][:privateKey=KEY.pem]`: a {@link HostnameEndpoint}
 *   over TLS, the certificate checked against `HOST` and `trustRoots`
 *   (default: Node's root store)
 * - `ssl:HOST:PORT[:timeout=S][:bindAddress=IP][:caCertsDir=DIR][:certKey=CERT.pem]
 *   [:privateKey=KEY.pem]`: `connectSSL`. Unlike Twisted, which verifies
 *   nothing without `caCertsDir`, the certificate is always verified
 *   (`caCertsDir`, or Node's root store).
 *
 * A bad string throws {@link EndpointStringError} naming the bad part.
 *
 * @module
 */

import { readdirSync, readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import type { SecureVersion } from 'node:tls';
import {
  type EndpointReactor,
  HostnameEndpoint,
  type IStreamClientEndpoint,
  type IStreamServerEndpoint,
  SSL4ClientEndpoint,
  SSL4ServerEndpoint,
  TCP4ClientEndpoint,
  TCP4ServerEndpoint,
  TCP6ClientEndpoint,
  TCP6ServerEndpoint,
  UNIXClientEndpoint,
  UNIXServerEndpoint,
} from './endpoints.js';
import { InvalidArgumentError } from './errors.js';
import type { IReactorTLS } from './interfaces.js';

/**
 * An endpoint description that cannot be used; the message names the bad
 * part (`unknown endpoint type 'tpc'`, `port must be an integer: 'abc'`,
 * `unknown parameter 'bakclog' for tcp`…). An `InvalidArgumentError`.
 */
export class EndpointStringError extends InvalidArgumentError {
  override readonly code: string = 'TORSION_ERR_ENDPOINT_STRING';
  /** The whole description. */
  readonly description: string;
  /** What is wrong with it. */
  readonly problem: string;

  constructor(description: string, problem: string) {
    super(`bad endpoint description '${description}': ${problem}`);
    this.description = description;
    this.problem = problem;
  }
}

// ====================================================================== tokenizing

/** A description split up: the endpoint type, positional and keyword arguments. */
export interface ParsedDescription {
  readonly type: string;
  readonly args: readonly string[];
  readonly kwargs: ReadonlyMap<string, string>;
}

const COLON = 58;
const EQUALS = 61;
const BACKSLASH = 92;

/**
 * Splits a description as Twisted's `_parse` does (see the module
 * documentation for the rules).
 * @throws EndpointStringError for an empty type, a dangling backslash, an
 *   empty keyword or one given twice.
 */
export function parseDescription(description: string): ParsedDescription {
  if (typeof description !== 'string') {
    throw new EndpointStringError(String(description), 'the description must be a string');
  }
  const segments: string[][] = [];
  let segment: string[] = [];
  let pieces: string[] = [];
  let start = 0;
  let sawEquals = false;
  const n = description.length;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? description.charCodeAt(i) : COLON;
    if (c === BACKSLASH) {
      if (i + 1 >= n) throw new EndpointStringError(description, 'dangling backslash at the end');
      pieces.push(description.slice(start, i), description[i + 1]!);
      i++;
      start = i + 1;
    } else if (c === COLON || (c === EQUALS && !sawEquals)) {
      pieces.push(description.slice(start, i));
      segment.push(pieces.join(''));
      pieces = [];
      start = i + 1;
      if (c === EQUALS) {
        sawEquals = true;
      } else {
        segments.push(segment);
        segment = [];
        sawEquals = false;
      }
    }
  }
  const head = segments[0]!;
  if (head.length !== 1 || head[0] === '') {
    throw new EndpointStringError(
      description,
      'it must start with the endpoint type (tcp:, unix:…)',
    );
  }
  const args: string[] = [];
  const kwargs = new Map<string, string>();
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]!;
    if (s.length === 1) {
      args.push(s[0]!);
      continue;
    }
    const [key, value] = s as [string, string];
    if (key === '')
      throw new EndpointStringError(description, `empty parameter name before '=${value}'`);
    if (kwargs.has(key))
      throw new EndpointStringError(description, `parameter '${key}' given twice`);
    kwargs.set(key, value);
  }
  return { type: head[0]!, args, kwargs };
}

// ====================================================================== parameters

/** What is wrong with one part of a description; becomes an {@link EndpointStringError}. */
class Problem extends Error {}

/** Converts one parameter's text; throws a {@link Problem} saying what is wrong. */
type Convert = (value: string, name: string) => unknown;

interface Param {
  readonly name: string;
  readonly convert: Convert;
}

const text: Convert = (value, name) => {
  if (value === '') throw new Problem(`${name} must not be empty`);
  return value;
};

/** Any text, the empty string included (an interface of `''` means all). */
const anyText: Convert = (value) => value;

function integer(value: string, name: string, min: number, max: number): number {
  if (!/^[0-9]+$/.test(value)) throw new Problem(`${name} must be an integer: '${value}'`);
  const n = Number(value);
  if (n < min || n > max)
    throw new Problem(`${name} must be between ${min} and ${max}: '${value}'`);
  return n;
}

const serverPort: Convert = (value, name) => integer(value, name, 0, 65535);
const clientPort: Convert = (value, name) => integer(value, name, 1, 65535);
const positive: Convert = (value, name) => integer(value, name, 1, 2 ** 31 - 1);

const seconds: Convert = (value, name) => {
  if (!/^[0-9]+(\.[0-9]*)?$|^\.[0-9]+$/.test(value)) {
    throw new Problem(`${name} must be a number of seconds: '${value}'`);
  }
  return Number(value);
};

const octal: Convert = (value, name) => {
  if (!/^0?o?[0-7]{1,4}$/.test(value))
    throw new Problem(`${name} must be an octal file mode: '${value}'`);
  return Number.parseInt(value.replace(/^0?o?/, ''), 8);
};

const flag: Convert = (value, name) => {
  const v = value.toLowerCase();
  if (v === '1' || v === 'true' || v === 'yes') return true;
  if (v === '0' || v === 'false' || v === 'no') return false;
  throw new Problem(`${name} must be 0 or 1: '${value}'`);
};

const ipLiteral: Convert = (value, name) => {
  if (net.isIP(value) === 0) throw new Problem(`${name} must be an IP address: '${value}'`);
  return value;
};

/** Twisted's `sslmethod` names, as Node's protocol version bounds. */
const SSL_METHODS: Record<string, [SecureVersion | undefined, SecureVersion | undefined]> = {
  SSLv23_METHOD: [undefined, undefined],
  TLS_METHOD: [undefined, undefined],
  TLSv1_METHOD: ['TLSv1', 'TLSv1'],
  TLSv1_1_METHOD: ['TLSv1.1', 'TLSv1.1'],
  TLSv1_2_METHOD: ['TLSv1.2', 'TLSv1.2'],
};

const sslMethod: Convert = (value, name) => {
  const range = SSL_METHODS[value];
  if (range === undefined) {
    throw new Problem(`${name} must be one of ${Object.keys(SSL_METHODS).join(', ')}: '${value}'`);
  }
  return range;
};

function readPem(path: string, name: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new Problem(`cannot read ${name} '${path}': ${(e as Error).message}`);
  }
}

/** A PEM file, or every `*.pem`/`*.crt` file of a directory (CA roots). */
function readCerts(path: string, name: string): Buffer[] {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (e) {
    throw new Problem(`cannot read ${name} '${path}': ${(e as Error).message}`);
  }
  if (!isDir) return [readPem(path, name)];
  const files = readdirSync(path)
    .filter((f) => f.endsWith('.pem') || f.endsWith('.crt'))
    .sort();
  if (files.length === 0) throw new Problem(`${name} '${path}' holds no .pem or .crt file`);
  return files.map((f) => readPem(join(path, f), name));
}

type Values = Record<string, unknown>;

interface Kind<R> {
  readonly params: readonly Param[];
  readonly required: readonly string[];
  build(reactor: EndpointReactor, v: Values): R;
}

/** Binds positional and keyword arguments to `kind`'s parameters and converts them. */
function bind<R>(description: string, parsed: ParsedDescription, kind: Kind<R>): Values {
  const { type, args, kwargs } = parsed;
  const params = kind.params;
  const values: Values = {};
  const problem = (why: string): never => {
    throw new EndpointStringError(description, why);
  };
  const convert = (param: Param, value: string): void => {
    try {
      values[param.name] = param.convert(value, param.name);
    } catch (why) {
      if (!(why instanceof Problem)) throw why;
      problem(why.message);
    }
  };
  if (args.length > params.length) {
    problem(`too many positional arguments for ${type}: '${args[params.length]}'`);
  }
  for (let i = 0; i < args.length; i++) convert(params[i]!, args[i]!);
  for (const [key, value] of kwargs) {
    const param = params.find((p) => p.name === key);
    if (param === undefined) {
      return problem(
        `unknown parameter '${key}' for ${type} (known: ${params.map((p) => p.name).join(', ')})`,
      );
    }
    if (key in values) problem(`parameter '${key}' given twice`);
    convert(param, value);
  }
  for (const name of kind.required) {
    if (!(name in values)) problem(`missing parameter '${name}' for ${type}`);
  }
  return values;
}

function p(name: string, convert: Convert): Param {
  return { name, convert };
}

/** The reactor's TLS methods, or a problem naming the endpoint type. */
function tlsReactor(reactor: EndpointReactor, type: string): IReactorTLS {
  if (typeof reactor.listenSSL !== 'function' || typeof reactor.connectSSL !== 'function') {
    throw new Problem(`${type} endpoints need a reactor with TLS (listenSSL/connectSSL)`);
  }
  return reactor as IReactorTLS;
}

// ====================================================================== servers

const TCP_SERVER_PARAMS = [p('port', serverPort), p('interface', anyText), p('backlog', positive)];

const SERVER_KINDS: Record<string, Kind<IStreamServerEndpoint>> = {
  tcp: {
    params: TCP_SERVER_PARAMS,
    required: ['port'],
    build: (reactor, v) =>
      new TCP4ServerEndpoint(reactor, v.port as number, {
        interface: v.interface as string | undefined,
        backlog: v.backlog as number | undefined,
      }),
  },
  tcp6: {
    params: TCP_SERVER_PARAMS,
    required: ['port'],
    build: (reactor, v) =>
      new TCP6ServerEndpoint(reactor, v.port as number, {
        interface: v.interface as string | undefined,
        backlog: v.backlog as number | undefined,
      }),
  },
  unix: {
    params: [p('address', text), p('mode', octal), p('backlog', positive), p('lockfile', flag)],
    required: ['address'],
    build: (reactor, v) =>
      new UNIXServerEndpoint(reactor, v.address as string, {
        mode: (v.mode as number | undefined) ?? 0o666,
        backlog: v.backlog as number | undefined,
        wantPID: v.lockfile as boolean | undefined,
      }),
  },
  ssl: {
    params: [
      p('port', serverPort),
      p('privateKey', text),
      p('certKey', text),
      p('sslmethod', sslMethod),
      p('interface', anyText),
      p('backlog', positive),
      p('extraCertChain', text),
      p('dhParameters', text),
    ],
    required: ['port'],
    build(reactor, v) {
      const tlsMethods = tlsReactor(reactor, 'ssl');
      const keyPath = (v.privateKey as string | undefined) ?? 'server.pem';
      const key = readPem(keyPath, 'privateKey');
      let cert = readPem((v.certKey as string | undefined) ?? keyPath, 'certKey');
      if (v.extraCertChain !== undefined) {
        const chain = readPem(v.extraCertChain as string, 'extraCertChain');
        cert = Buffer.concat([cert, Buffer.from('\n'), chain]);
      }
      const [minVersion, maxVersion] = (v.sslmethod as [SecureVersion?, SecureVersion?]) ?? [];
      return new SSL4ServerEndpoint(
        tlsMethods,
        v.port as number,
        {
          key,
          cert,
          ...(v.dhParameters === undefined
            ? {}
            : { dhparam: readPem(v.dhParameters as string, 'dhParameters') }),
          ...(minVersion === undefined ? {} : { minVersion, maxVersion }),
        },
        { interface: v.interface as string | undefined, backlog: v.backlog as number | undefined },
      );
    },
  },
};

// ====================================================================== clients

const TCP_CLIENT_PARAMS = [
  p('host', text),
  p('port', clientPort),
  p('timeout', seconds),
  p('bindAddress', ipLiteral),
];

function tcpClientOptions(v: Values): { timeout?: number; bindAddress?: [string, number] } {
  return {
    timeout: v.timeout as number | undefined,
    bindAddress: v.bindAddress === undefined ? undefined : [v.bindAddress as string, 0],
  };
}

const CLIENT_KINDS: Record<string, Kind<IStreamClientEndpoint>> = {
  tcp: {
    params: TCP_CLIENT_PARAMS,
    required: ['host', 'port'],
    build(reactor, v) {
      const host = v.host as string;
      const Endpoint = net.isIPv6(host) ? TCP6ClientEndpoint : TCP4ClientEndpoint;
      return new Endpoint(reactor, host, v.port as number, tcpClientOptions(v));
    },
  },
  tcp6: {
    params: TCP_CLIENT_PARAMS,
    required: ['host', 'port'],
    build: (reactor, v) =>
      new TCP6ClientEndpoint(reactor, v.host as string, v.port as number, tcpClientOptions(v)),
  },
  unix: {
    params: [p('path', text), p('timeout', seconds)],
    required: ['path'],
    build: (reactor, v) =>
      new UNIXClientEndpoint(reactor, v.path as string, {
        timeout: v.timeout as number | undefined,
      }),
  },
  tls: {
    params: [
      ...TCP_CLIENT_PARAMS,
      p('certificate', text),
      p('privateKey', text),
      p('trustRoots', text),
    ],
    required: ['host', 'port'],
    build(reactor, v) {
      tlsReactor(reactor, 'tls');
      const tls: Values = {};
      if (v.trustRoots !== undefined) tls.ca = readCerts(v.trustRoots as string, 'trustRoots');
      if (v.certificate !== undefined) {
        tls.cert = readPem(v.certificate as string, 'certificate');
        tls.key = readPem(
          (v.privateKey as string | undefined) ?? (v.certificate as string),
          'privateKey',
        );
      } else if (v.privateKey !== undefined) {
        throw new Problem('privateKey needs certificate');
      }
      return new HostnameEndpoint(reactor, v.host as string, v.port as number, {
        ...tcpClientOptions(v),
        tls,
      });
    },
  },
  ssl: {
    params: [
      ...TCP_CLIENT_PARAMS,
      p('certKey', text),
      p('privateKey', text),
      p('caCertsDir', text),
    ],
    required: ['host', 'port'],
    build(reactor, v) {
      const tlsMethods = tlsReactor(reactor, 'ssl');
      const tls: Values = {};
      if (v.caCertsDir !== undefined) tls.ca = readCerts(v.caCertsDir as string, 'caCertsDir');
      if (v.certKey !== undefined) {
        tls.cert = readPem(v.certKey as string, 'certKey');
        tls.key = readPem(
          (v.privateKey as string | undefined) ?? (v.certKey as string),
          'privateKey',
        );
      } else if (v.privateKey !== undefined) {
        throw new Problem('privateKey needs certKey');
      }
      return new SSL4ClientEndpoint(
        tlsMethods,
        v.host as string,
        v.port as number,
        tls,
        tcpClientOptions(v),
      );
    },
  },
};

// ====================================================================== entry points

function fromString<R>(
  reactor: EndpointReactor,
  description: string,
  kinds: Record<string, Kind<R>>,
  side: string,
): R {
  const parsed = parseDescription(description);
  const kind = Object.hasOwn(kinds, parsed.type) ? kinds[parsed.type] : undefined;
  if (kind === undefined) {
    throw new EndpointStringError(
      description,
      `unknown endpoint type '${parsed.type}' for a ${side} (known: ${Object.keys(kinds).join(', ')})`,
    );
  }
  const values = bind(description, parsed, kind);
  try {
    return kind.build(reactor, values);
  } catch (why) {
    if (why instanceof Problem) throw new EndpointStringError(description, why.message);
    if (why instanceof InvalidArgumentError && !(why instanceof EndpointStringError)) {
      throw new EndpointStringError(description, why.message);
    }
    throw why;
  }
}

/**
 * A server endpoint from a description (`"tcp:8080:interface=127.0.0.1"`,
 * `"unix:/run/app.sock:mode=660"`, `"ssl:8443:privateKey=key.pem:certKey=cert.pem"`;
 * see the module documentation). `ssl:` reads its PEM files now.
 * @throws EndpointStringError naming the bad part of a bad description (or
 *   an unreadable file).
 */
export function serverFromString(
  reactor: EndpointReactor,
  description: string,
): IStreamServerEndpoint {
  return fromString(reactor, description, SERVER_KINDS, 'server');
}

/**
 * A client endpoint from a description (`"tcp:example.com:80"`,
 * `"tcp:host=example.com:port=80:timeout=5"`, `"unix:path=/run/app.sock"`,
 * `"tls:example.com:443"`; see the module documentation).
 * @throws EndpointStringError naming the bad part of a bad description (or
 *   an unreadable file).
 */
export function clientFromString(
  reactor: EndpointReactor,
  description: string,
): IStreamClientEndpoint {
  return fromString(reactor, description, CLIENT_KINDS, 'client');
}
