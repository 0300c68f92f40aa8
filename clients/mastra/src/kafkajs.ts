import type { CompressionTypes, ICustomPartitioner, Kafka, KafkaConfig, LogEntry, Producer, TopicMessages } from 'kafkajs';

import { loadKafkaJS } from './produce.cjs';
import type { OutRecord, Transport } from './transport.js';

// kafkajs, loaded after the faster produce path is swapped into it (produce.cts).
const { kafkajs, fast } = loadKafkaJS();
const { logLevel, Partitioners } = kafkajs;

export interface KafkaJSTransportOptions {
  brokers: string[];
  clientId: string;
  ssl?: KafkaConfig['ssl'];
  sasl?: KafkaConfig['sasl'];
  compression: 'none' | 'gzip';
  connectionTimeoutMs: number;
  requestTimeoutMs: number;
  /** Where kafkajs' own log lines go (debug level: the exporter logs outages itself). */
  log: (message: string, extra: Record<string, unknown>) => void;
}

/**
 * The kafkajs transport: an idempotent producer (acks=all, one request in flight, so that
 * a retried request can neither duplicate nor reorder records).
 *
 * kafkajs retries a failed request a few times only: the exporter owns the retry loop
 * and the delivery deadline, and a send must fail in seconds, not retry for ever, so
 * that records past their deadline are reported as dropped while the broker is away.
 */
export class KafkaJSTransport implements Transport {
  private readonly kafka: Kafka;
  private producer: Producer;
  private connected = false;
  private readonly compression: CompressionTypes;

  constructor(private readonly opts: KafkaJSTransportOptions) {
    this.kafka = new kafkajs.Kafka({
      clientId: opts.clientId,
      brokers: opts.brokers,
      ssl: opts.ssl,
      sasl: opts.sasl,
      connectionTimeout: opts.connectionTimeoutMs,
      requestTimeout: opts.requestTimeoutMs,
      logLevel: logLevel.WARN,
      logCreator: () => (entry: LogEntry) => {
        const { message, ...extra } = entry.log;
        opts.log(`kafkajs ${entry.namespace}: ${message}`, extra);
      },
    });
    this.compression = opts.compression === 'gzip' ? kafkajs.CompressionTypes.GZIP : kafkajs.CompressionTypes.None;
    if (!fast) opts.log('kafkajs was loaded before the exporter: some of its own (slower) produce steps stay in use', {});
    this.producer = this.newProducer();
  }

  private newProducer(): Producer {
    return this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: javaCompatiblePartitioner,
      retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 },
    });
  }

  async connect(): Promise<void> {
    if (this.connected) return;
    await this.producer.connect();
    this.connected = true;
  }

  async send(records: OutRecord[]): Promise<void> {
    await this.connect();
    // The records are kafkajs messages as they are (no copy per record); one entry per topic.
    const byTopic = new Map<string, TopicMessages>();
    for (const r of records) {
      let t = byTopic.get(r.topic);
      if (!t) {
        t = { topic: r.topic, messages: [] };
        byTopic.set(r.topic, t);
      }
      t.messages.push(r);
    }
    try {
      await this.producer.sendBatch({
        topicMessages: [...byTopic.values()],
        acks: -1,
        timeout: this.opts.requestTimeoutMs,
        compression: this.compression,
      });
    } catch (err) {
      // A broken connection can leave the producer unusable ("The producer is
      // disconnected"): connect again before the next attempt.
      if (err instanceof Error && /disconnected/i.test(err.message)) this.connected = false;
      throw err;
    }
  }

  async reset(): Promise<void> {
    const old = this.producer;
    this.producer = this.newProducer();
    this.connected = false;
    await old.disconnect().catch(() => {});
  }

  async disconnect(): Promise<void> {
    this.connected = false;
    await this.producer.disconnect();
  }
}

/**
 * kafkajs' DefaultPartitioner (the Java client's murmur2 of the key, so that a trace lands
 * on the same partition as from spanpipe's Go producer), with the hash computed in 32-bit
 * integer arithmetic: kafkajs computes it with 64-bit Long objects, which took a quarter
 * of the app's CPU spent in kafkajs. Keyless records go to kafkajs' own partitioner.
 */
export const javaCompatiblePartitioner: ICustomPartitioner = () => {
  const fallback = Partitioners.DefaultPartitioner();
  return (args) => {
    const { message, partitionMetadata } = args;
    if (message.partition != null || message.key == null) return fallback(args);
    return (murmur2(message.key) & 0x7fffffff) % partitionMetadata.length;
  };
};

const utf8 = new TextEncoder();
const scratch = new Uint8Array(1024);

/** The Java client's murmur2 (org.apache.kafka.common.utils.Utils.murmur2) of a key's UTF-8 bytes. */
export function murmur2(key: string | Buffer): number {
  let data: Uint8Array = key as Buffer;
  let len = data.length;
  if (typeof key === 'string') {
    // A trace id fits the reused buffer: no allocation per record.
    data = key.length * 3 <= scratch.length ? scratch : Buffer.from(key);
    len = data === scratch ? utf8.encodeInto(key, scratch).written : data.length;
  }
  const m = 0x5bd1e995;
  let h = 0x9747b28c ^ len;
  const len4 = len & ~3;
  for (let i = 0; i < len4; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    h = Math.imul(h, m) ^ Math.imul(k, m);
  }
  switch (len & 3) {
    case 3:
      h ^= data[len4 + 2]! << 16;
    // falls through
    case 2:
      h ^= data[len4 + 1]! << 8;
    // falls through
    case 1:
      h ^= data[len4]!;
      h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}
