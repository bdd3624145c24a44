// The parts of two untyped codecs that src/pipeline/compression.ts (and its tests, to compress) use.
declare module 'lz4js' {
  /** Unpacks an LZ4 frame into `dst`; returns the unpacked length, which may exceed `dst` (those bytes are dropped). */
  export function decompressFrame(src: Uint8Array, dst: Uint8Array): number;
  /** Packs `src` into an LZ4 frame. */
  export function compress(src: Uint8Array): Uint8Array;
  const lz4js: { decompressFrame: typeof decompressFrame; compress: typeof compress };
  export default lz4js;
}

declare module 'snappyjs' {
  /** Unpacks a raw snappy block; throws when its stated length is over `maxLength` or its bytes are invalid. */
  export function uncompress(compressed: Uint8Array, maxLength?: number): Uint8Array;
  /** Packs `uncompressed` into a raw snappy block. */
  export function compress(uncompressed: Uint8Array): Uint8Array;
  const snappyjs: { uncompress: typeof uncompress; compress: typeof compress };
  export default snappyjs;
}
