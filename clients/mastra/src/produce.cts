// kafkajs 2.2.4 spends most of the CPU it costs the app on three steps of its produce
// path, all of them per record or per byte; this module swaps in replacements that
// give the same results:
//
// - encoding a produce request: a zero-filled Encoder for every record (and one per
//   header), varints through Buffer.from(array), copies of every record into a batch
//   buffer that grows by doubling, then into the batch, the partition and the request;
//   CRC32C a byte at a time (13 µs per 443-byte record on a loaded 2-core machine). The
//   swap sizes the request first and writes it once into one buffer, CRC32C sliced by 8
//   (2 µs). Same bytes: test/produce.test.mjs compares them with kafkajs' own encoder.
// - framing a request (size, api key, correlation id, client id): two more copies of the
//   whole request through Encoders that grow by doubling; the swap writes it once.
// - grouping a request's messages by partition: kafkajs copies a partition's message
//   array for every message added to it (quadratic in the request's size); the swap
//   appends.
//
// kafkajs offers no hook for any of these, so the swap replaces the exports of those
// internal modules in Node's module cache before kafkajs loads them: loadKafkaJS()
// installs the swaps, then loads kafkajs. kafkajs is pinned to 2.2.4, its last release,
// so these internals do not move under us. Anything the produce encoder does not cover
// (compression, message timestamps, header value lists) goes to kafkajs' own encoder.
// Being module swaps, they apply to every user of this kafkajs copy in the process,
// with the same bytes. If the app loaded kafkajs before the exporter, the swaps that
// come too late stay out and kafkajs works as it is (slower). This file is CommonJS in
// both builds, so that it shares kafkajs' module cache.

import type * as KafkaJS from 'kafkajs';

const internal = (p: string): string => require.resolve(`kafkajs/src/${p}.js`);
const V3 = 'protocol/requests/produce/v3/request';
const LATER = ['v4', 'v5', 'v6', 'v7'].map((v) => `protocol/requests/produce/${v}/request`);

/**
 * Loads kafkajs with the swaps installed where they can still take effect (idempotent).
 * `fast` is false when some could not: kafkajs was loaded, or produced, before, or
 * there is no module cache (a bundle).
 */
export function loadKafkaJS(): { kafkajs: typeof KafkaJS; fast: boolean } {
  let fast = false;
  // An app that wants kafkajs untouched (another library in the process relies on its
  // internals, or to rule the swaps out while debugging) sets SPANPIPE_KAFKAJS_SWAPS=off.
  if (process.env.SPANPIPE_KAFKAJS_SWAPS === 'off') return { kafkajs: require('kafkajs') as typeof KafkaJS, fast };
  try {
    const loaded = require.cache[require.resolve('kafkajs')] !== undefined;
    fast = swap('producer/groupMessagesPerPartition', () => groupMessagesPerPartition, loaded);
    fast = swap('protocol/request', frameRequest, loaded) && fast;
    fast = swap(V3, fastRequest, LATER.some((p) => require.cache[internal(p)] !== undefined)) && fast;
  } catch {
    // No module cache to swap in (a bundler inlined kafkajs): kafkajs as it is.
  }
  return { kafkajs: require('kafkajs') as typeof KafkaJS, fast };
}

const FAST = Symbol.for('spanpipe.fastProduce');

/** Replaces a kafkajs module's export with make(original), unless its users already hold the original. */
function swap(name: string, make: (original: never) => unknown, tooLate: boolean): boolean {
  const path = internal(name);
  const exported = require(path);
  if (exported[FAST]) return true;
  if (tooLate) return false;
  const replacement = make(exported as never) as { [FAST]?: true };
  replacement[FAST] = true;
  require.cache[path]!.exports = replacement;
  return true;
}

interface GroupArgs<M> {
  topic: string;
  partitionMetadata: unknown[];
  messages: M[];
  partitioner: (args: { topic: string; partitionMetadata: unknown[]; message: M }) => number;
}

/** kafkajs' groupMessagesPerPartition, appending instead of copying. */
export function groupMessagesPerPartition<M>({ topic, partitionMetadata, messages, partitioner }: GroupArgs<M>): Record<number, M[]> {
  const out: Record<number, M[]> = {};
  if (partitionMetadata.length === 0) return out;
  for (const message of messages) {
    const partition = partitioner({ topic, partitionMetadata, message });
    (out[partition] ??= []).push(message);
  }
  return out;
}

interface FramedRequest {
  correlationId: number;
  clientId: string | null;
  request: { apiKey: number; apiVersion: number; encode: () => Promise<{ buffer: Buffer }> };
}

/** kafkajs' request framing (protocol/request.js), writing the request once. */
export function frameRequest(): (r: FramedRequest) => Promise<unknown> {
  const Encoder = require('kafkajs/src/protocol/encoder');
  return async ({ correlationId, clientId, request: { apiKey, apiVersion, encode } }) => {
    const payload = (await encode()).buffer;
    const idLen = clientId == null ? -1 : Buffer.byteLength(clientId);
    const size = 2 + 2 + 4 + 2 + Math.max(idLen, 0) + payload.length;
    const out = Buffer.allocUnsafe(4 + size);
    let off = out.writeInt32BE(size, 0);
    off = out.writeInt16BE(apiKey, off);
    off = out.writeInt16BE(apiVersion, off);
    off = out.writeInt32BE(correlationId, off);
    off = out.writeInt16BE(idLen, off);
    if (clientId != null) off += out.write(clientId, off, 'utf8');
    payload.copy(out, off);
    return wrap(Encoder, out);
  };
}

/** An Encoder holding buf: kafkajs reads the result of encode() and framing as one. */
function wrap(Encoder: new (size: number) => { buf: Buffer; offset: number }, buf: Buffer): unknown {
  const enc = new Encoder(1);
  enc.buf = buf;
  enc.offset = buf.length;
  return enc;
}

type Value = string | Buffer | null | undefined;
interface Message {
  key?: Value;
  value?: Value;
  headers?: Record<string, unknown>;
  timestamp?: unknown;
}
interface PartitionData {
  partition: number;
  firstSequence?: number;
  messages: Message[];
}
interface ProduceArgs {
  acks: number;
  timeout: number;
  transactionalId?: string | null;
  producerId?: unknown;
  producerEpoch?: number;
  compression?: number;
  topicData: Array<{ topic: string; partitions: PartitionData[] }>;
}
interface KafkaJSRequest {
  encode: () => Promise<unknown>;
}
type RequestFn = (args: ProduceArgs) => KafkaJSRequest;

/** kafkajs' produce v3 request function with the one-pass encoder where it applies. */
export function fastRequest(original: RequestFn): RequestFn {
  const Encoder = require('kafkajs/src/protocol/encoder');
  const Long = require('kafkajs/src/utils/long');
  return (args: ProduceArgs) => {
    const request = original(args);
    if (!fastPath(args)) return request;
    return {
      ...request,
      [FAST]: true,
      encode: async () => wrap(Encoder, encodeProduce(args, (v: unknown) => Long.fromValue(v).value as bigint)),
    };
  };
}

function isBytes(v: unknown): v is Value {
  return v == null || typeof v === 'string' || Buffer.isBuffer(v);
}

function fastPath(args: ProduceArgs): boolean {
  if (args.compression) return false;
  for (const t of args.topicData) {
    for (const p of t.partitions) {
      for (const m of p.messages) {
        if (m.timestamp != null || !isBytes(m.key) || !isBytes(m.value)) return false;
        if (m.headers !== undefined) {
          if (m.headers === null || typeof m.headers !== 'object') return false;
          for (const k in m.headers) {
            const v = m.headers[k];
            if (typeof v !== 'string' && !Buffer.isBuffer(v)) return false;
          }
        }
      }
    }
  }
  return true;
}

const zigzag = (v: number): number => ((v << 1) ^ (v >> 31)) >>> 0;

function varIntSize(v: number): number {
  let u = zigzag(v);
  let n = 1;
  while (u >= 0x80) {
    u >>>= 7;
    n++;
  }
  return n;
}

function writeVarInt(buf: Buffer, off: number, v: number): number {
  let u = zigzag(v);
  while (u >= 0x80) {
    buf[off++] = (u & 0x7f) | 0x80;
    u >>>= 7;
  }
  buf[off++] = u;
  return off;
}

const byteLen = (v: Value): number => (v == null ? -1 : typeof v === 'string' ? Buffer.byteLength(v) : v.length);
const bytesSize = (len: number): number => (len < 0 ? 1 : varIntSize(len) + len);

function writeBytes(buf: Buffer, off: number, v: Value, len: number): number {
  off = writeVarInt(buf, off, len);
  if (v == null) return off;
  if (typeof v === 'string') buf.write(v, off, len, 'utf8');
  else v.copy(buf, off);
  return off + len;
}

const BATCH_HEADER = 8 + 4 + 4 + 1 + 4; // firstOffset, length, partitionLeaderEpoch, magic, crc
const BATCH_BODY_HEADER = 2 + 4 + 8 + 8 + 8 + 2 + 4 + 4; // attributes .. firstSequence, record count

/**
 * The Produce v3 request body, as kafkajs writes it uncompressed: every record with
 * timestamp delta 0 against one batch timestamp (Date.now()), offset deltas 0..n-1.
 */
export function encodeProduce(args: ProduceArgs, int64: (v: unknown) => bigint): Buffer {
  const now = Date.now();
  const txn = args.transactionalId ?? null;
  // Sizes first: lengths of every key, value and header, and every record's body.
  const lens: number[] = [];
  let size = 2 + (txn === null ? 0 : Buffer.byteLength(txn)) + 2 + 4 + 4;
  for (const t of args.topicData) {
    size += 2 + Buffer.byteLength(t.topic) + 4;
    for (const p of t.partitions) {
      size += 4 + 4 + BATCH_HEADER + BATCH_BODY_HEADER;
      p.messages.forEach((m, i) => {
        const k = byteLen(m.key);
        const v = byteLen(m.value);
        let body = 1 + 1 + varIntSize(i) + bytesSize(k) + bytesSize(v);
        const hs = m.headers ? Object.keys(m.headers) : [];
        for (const hk of hs) {
          const kl = Buffer.byteLength(hk);
          body += varIntSize(kl) + kl + bytesSize(byteLen(m.headers![hk] as Value));
        }
        body += varIntSize(hs.length);
        lens.push(body, k, v);
        size += varIntSize(body) + body;
      });
    }
  }

  const buf = Buffer.allocUnsafe(size);
  let off = buf.writeInt16BE(txn === null ? -1 : Buffer.byteLength(txn), 0);
  if (txn !== null) off += buf.write(txn, off, 'utf8');
  off = buf.writeInt16BE(args.acks, off);
  off = buf.writeInt32BE(args.timeout, off);
  off = buf.writeInt32BE(args.topicData.length, off);
  const producerId = int64(args.producerId ?? -1);
  let li = 0;
  for (const t of args.topicData) {
    off = buf.writeInt16BE(Buffer.byteLength(t.topic), off);
    off += buf.write(t.topic, off, 'utf8');
    off = buf.writeInt32BE(t.partitions.length, off);
    for (const p of t.partitions) {
      off = buf.writeInt32BE(p.partition, off);
      const sizeAt = off;
      off += 4;
      off = buf.writeBigInt64BE(0n, off); // firstOffset
      const lengthAt = off;
      off += 4;
      off = buf.writeInt32BE(0, off); // partitionLeaderEpoch
      off = buf.writeInt8(2, off); // magic
      const crcAt = off;
      off += 4;
      const bodyAt = off;
      off = buf.writeInt16BE(txn ? 16 : 0, off); // attributes: no compression, transactional bit
      off = buf.writeInt32BE(p.messages.length - 1, off); // lastOffsetDelta
      off = buf.writeBigInt64BE(BigInt(now), off); // firstTimestamp
      off = buf.writeBigInt64BE(BigInt(now), off); // maxTimestamp
      off = buf.writeBigInt64BE(producerId, off);
      off = buf.writeInt16BE(args.producerEpoch ?? 0, off);
      off = buf.writeInt32BE(p.firstSequence ?? 0, off);
      off = buf.writeInt32BE(p.messages.length, off);
      p.messages.forEach((m, i) => {
        const body = lens[li++]!;
        const k = lens[li++]!;
        const v = lens[li++]!;
        off = writeVarInt(buf, off, body);
        buf[off++] = 0; // attributes
        buf[off++] = 0; // timestamp delta
        off = writeVarInt(buf, off, i);
        off = writeBytes(buf, off, m.key, k);
        off = writeBytes(buf, off, m.value, v);
        const hs = m.headers ? Object.keys(m.headers) : [];
        off = writeVarInt(buf, off, hs.length);
        for (const hk of hs) {
          const hv = m.headers![hk] as Value;
          off = writeBytes(buf, off, hk, Buffer.byteLength(hk));
          off = writeBytes(buf, off, hv, byteLen(hv));
        }
      });
      buf.writeUInt32BE(crc32c(buf, bodyAt, off), crcAt);
      buf.writeInt32BE(off - lengthAt - 4, lengthAt);
      buf.writeInt32BE(off - sizeAt - 4, sizeAt);
    }
  }
  if (off !== size) throw new Error(`spanpipe produce encoder: wrote ${off} bytes, sized ${size}`);
  return buf;
}

// CRC32C (Castagnoli), slicing by 8: eight table lookups per 8 bytes instead of one per byte.
const T = (() => {
  const t = new Int32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    for (let s = 1; s < 8; s++) t[s * 256 + n] = (t[(s - 1) * 256 + n]! >>> 8) ^ t[t[(s - 1) * 256 + n]! & 0xff]!;
  }
  return t;
})();

/** CRC32C of buf[start, end). */
export function crc32c(buf: Uint8Array, start: number, end: number): number {
  let crc = -1;
  let i = start;
  for (const end8 = end - ((end - start) & 7); i < end8; i += 8) {
    const a = crc ^ (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24));
    crc =
      T[7 * 256 + (a & 0xff)]! ^
      T[6 * 256 + ((a >>> 8) & 0xff)]! ^
      T[5 * 256 + ((a >>> 16) & 0xff)]! ^
      T[4 * 256 + (a >>> 24)]! ^
      T[3 * 256 + buf[i + 4]!]! ^
      T[2 * 256 + buf[i + 5]!]! ^
      T[256 + buf[i + 6]!]! ^
      T[buf[i + 7]!]!;
  }
  for (; i < end; i++) crc = T[(crc ^ buf[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ -1) >>> 0;
}
