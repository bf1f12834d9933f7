/**
 * Test support (not a test file) for wire parsers: {@link cuts}, the ways
 * the tests of the stream receivers (line, netstring, length-prefixed) feed
 * one byte stream, as Twisted's `test_basic.py` does with packet sizes 1–9.
 */

/**
 * Every way to cut `data` into chunks that the tests feed: whole; in packets
 * of 1 to 9 bytes; and in two pieces at every split point. Each comes with a
 * name for the test's messages. The chunks are views of `data`, not copies.
 */
export function* cuts(data: Buffer): Generator<[name: string, parts: Buffer[]]> {
  yield ['whole', [data]];
  for (let size = 1; size <= 9; size++) {
    const parts: Buffer[] = [];
    for (let i = 0; i < data.length; i += size) parts.push(data.subarray(i, i + size));
    yield [`packets of ${size}`, parts];
  }
  for (let i = 1; i < data.length; i++) {
    yield [`split at ${i}`, [data.subarray(0, i), data.subarray(i)]];
  }
}
