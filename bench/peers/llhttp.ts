/**
 * Node's own llhttp request parser, through the deprecated
 * `process.binding('http_parser')`: the peer of the HTTP parser bench and
 * of the parser's differential test.
 */

export interface NodeHTTPParser {
  initialize(type: number, resource: object, maxHeaderSize?: number, lenient?: number): void;
  execute(data: Buffer): number | Error;
  [callback: number]: unknown;
}

export interface HTTPParserBinding {
  HTTPParser: {
    new (): NodeHTTPParser;
    REQUEST: number;
    kOnHeaders: number;
    kOnHeadersComplete: number;
    kOnBody: number;
    kOnMessageComplete: number;
  };
  methods: string[];
}

/** Node's llhttp binding, or `null` where `process.binding('http_parser')` is gone. */
export function loadLlhttp(): HTTPParserBinding | null {
  // process.binding warns once (DEP0111); the bench output should stay clean.
  const quiet = process.noDeprecation;
  process.noDeprecation = true;
  try {
    const binding = (process as unknown as { binding(name: string): unknown }).binding(
      'http_parser',
    );
    return binding as HTTPParserBinding;
  } catch {
    return null;
  } finally {
    process.noDeprecation = quiet;
  }
}
