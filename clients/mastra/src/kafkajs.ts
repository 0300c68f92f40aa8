import { CompressionTypes, Kafka, logLevel, Partitioners } from 'kafkajs';
import type { KafkaConfig, LogEntry, Producer, TopicMessages } from 'kafkajs';

import type { OutRecord, Transport } from './transport.js';

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
    this.kafka = new Kafka({
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
    this.compression = opts.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None;
    this.producer = this.newProducer();
  }

  private newProducer(): Producer {
    return this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      // Java client's murmur2 partitioner: a trace lands on the same partition as
      // from spanpipe's Go producer.
      createPartitioner: Partitioners.DefaultPartitioner,
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
    const byTopic = new Map<string, TopicMessages>();
    for (const r of records) {
      let t = byTopic.get(r.topic);
      if (!t) {
        t = { topic: r.topic, messages: [] };
        byTopic.set(r.topic, t);
      }
      t.messages.push({ key: r.key, value: r.value, headers: r.headers });
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
