import type {
  FeedbackEvent,
  InitExporterOptions,
  LogEvent,
  MetricEvent,
  ObservabilityDropEvent,
  ObservabilityDropSignal,
  ObservabilityExporter,
  ScoreEvent,
  TracingEvent,
} from '@mastra/core/observability';
import type { KafkaConfig } from 'kafkajs';

import { KafkaJSTransport } from './kafkajs.js';
import type { OutRecord, Transport } from './transport.js';

/** Why the exporter lost events; the names are spanpipe's drop reasons. */
export type KafkaDropReason = 'producer-buffer-full' | 'producer-send-failed' | 'producer-encode-error' | 'too-large';

/**
 * A drop as the exporter reports it through Mastra's drop-event path (`onDroppedEvent`
 * of every exporter and bridge). Mastra's type names only its storage exporter's two
 * reasons; these are spanpipe's, the same that go to the spanpipe drop topic.
 */
export type KafkaDropEvent = Omit<ObservabilityDropEvent, 'reason'> & { reason: KafkaDropReason };

type Logger = {
  debug(message: string, ...args: unknown[]): void;
  info(message: string, ...args: unknown[]): void;
  warn(message: string, ...args: unknown[]): void;
  error(message: string, ...args: unknown[]): void;
};

export interface KafkaExporterConfig {
  /** Bootstrap brokers, host:port. Required. */
  brokers: string[];
  /** Topic `spanpipe consume` reads. Default spanpipe.spans. */
  topic?: string;
  /** Topic of spanpipe drop events. Default spanpipe.drops. */
  dropTopic?: string;
  /** Default spanpipe-mastra. */
  clientId?: string;
  /** TLS: true, or Node TLS options (ca, cert, key, ...). */
  ssl?: KafkaConfig['ssl'];
  /** SASL (plain, scram-sha-256, scram-sha-512, aws, oauthbearer), as kafkajs takes it. */
  sasl?: KafkaConfig['sasl'];
  /** Default none; gzip is the codec every Kafka client reads without a plugin. */
  compression?: 'none' | 'gzip';
  /** Events held in memory at most; more are dropped (producer-buffer-full). Default 10000. */
  maxBufferSize?: number;
  /** ... or this many bytes of serialized events. Default 64 MiB. */
  maxBufferBytes?: number;
  /** Events per produce request at most. Default 1000. */
  maxBatchSize?: number;
  /** Bytes per produce request at most (Kafka's message.max.bytes is ~1 MB). Default 1000000. */
  maxBatchBytes?: number;
  /** How long an event waits for more to fill its request (flush() does not wait). Default 100 ms. */
  maxBatchWaitMs?: number;
  /** A larger serialized event is dropped (too-large). Default 1000000. */
  maxRecordBytes?: number;
  /**
   * An event Kafka has not acknowledged this long after it was emitted is dropped
   * (producer-send-failed). Bounds how long flush() and shutdown() wait during an outage.
   * Default 30000.
   */
  deliveryTimeoutMs?: number;
  /** Default 5000. */
  requestTimeoutMs?: number;
  /** Default 3000. */
  connectionTimeoutMs?: number;
  /** Mastra's drop-event path gets one aggregated event per signal and reason this often. Default 1000. */
  dropReportIntervalMs?: number;
  /** The Kafka client; default kafkajs built from the options above. For tests and other clients. */
  transport?: Transport;
}

/** What the exporter did so far; counts are events. */
export interface KafkaExporterStats {
  emitted: number;
  acked: number;
  dropped: number;
  droppedBy: Record<string, number>;
  buffered: number;
  bufferedBytes: number;
  dropEventsPublished: number;
}

interface Rec {
  out: OutRecord;
  bytes: number;
  signal: ObservabilityDropSignal;
  traceId: string | undefined;
  deadline: number;
  /** Position in emission order: records are acknowledged or dropped in this order. */
  seq: number;
}

interface DropTally {
  signal: ObservabilityDropSignal;
  reason: KafkaDropReason;
  count: number;
  firstTime: number;
  lastTime: number;
  error?: string;
  sampleTraceIds: string[];
}

const HEADERS = Object.freeze({ 'spanpipe-codec': 'json' });
const MAX_SAMPLE_TRACE_IDS = 5;

/**
 * KafkaExporter publishes every Mastra observability event (spans, logs, metrics,
 * scores, feedback) to Kafka as the JSON `spanpipe consume` reads, keyed by trace id.
 *
 * The hooks never block and never throw: an event is serialized and queued; a single
 * sender delivers the queue in order. The queue is bounded; what cannot be delivered
 * is counted and reported, both through Mastra's drop-event path and as spanpipe drop
 * events on the drop topic once Kafka accepts them.
 */
export class KafkaExporter implements ObservabilityExporter {
  readonly name = 'spanpipe-kafka-exporter';

  private readonly cfg: Required<Omit<KafkaExporterConfig, 'ssl' | 'sasl' | 'transport'>> &
    Pick<KafkaExporterConfig, 'ssl' | 'sasl'>;
  private transport: Transport;
  private logger: Logger = { debug: () => {}, info: console.info, warn: console.warn, error: console.error };
  private emitDropEvent?: (event: ObservabilityDropEvent) => void;
  private instance = 'mastra';
  private readonly bufferFull: string;

  private queue: Rec[] = [];
  private head = 0;
  private queuedBytes = 0;
  private inFlight: Rec[] = [];
  private pumping = false;
  private lingerTimer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  private outageSince = 0;
  private attempt = 0;

  /** Counts not yet reported through Mastra, and not yet published to the drop topic. */
  private mastraDrops = new Map<string, DropTally>();
  private kafkaDrops = new Map<string, DropTally>();
  private dropTimer: ReturnType<typeof setTimeout> | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private seq = 0;
  /** Records up to this seq are sent without lingering (flush() was called after them). */
  private urgentSeq = 0;
  /** Every queued record up to this seq is acknowledged or dropped. */
  private settledSeq = 0;

  private readonly stat: KafkaExporterStats = {
    emitted: 0,
    acked: 0,
    dropped: 0,
    droppedBy: {},
    buffered: 0,
    bufferedBytes: 0,
    dropEventsPublished: 0,
  };

  constructor(config: KafkaExporterConfig) {
    const problems: string[] = [];
    if (!Array.isArray(config?.brokers) || config.brokers.length === 0) problems.push('brokers: at least one host:port');
    const cfg = {
      topic: 'spanpipe.spans',
      dropTopic: 'spanpipe.drops',
      clientId: 'spanpipe-mastra',
      compression: 'none' as const,
      maxBufferSize: 10000,
      maxBufferBytes: 64 << 20,
      maxBatchSize: 1000,
      maxBatchBytes: 1_000_000,
      maxBatchWaitMs: 100,
      maxRecordBytes: 1_000_000,
      deliveryTimeoutMs: 30_000,
      requestTimeoutMs: 5000,
      connectionTimeoutMs: 3000,
      dropReportIntervalMs: 1000,
      ...stripUndefined(config),
      brokers: config?.brokers ?? [],
    };
    for (const k of [
      'maxBufferSize',
      'maxBufferBytes',
      'maxBatchSize',
      'maxBatchBytes',
      'maxRecordBytes',
      'deliveryTimeoutMs',
      'requestTimeoutMs',
      'connectionTimeoutMs',
      'dropReportIntervalMs',
    ] as const) {
      if (!Number.isFinite(cfg[k]) || cfg[k] <= 0) problems.push(`${k}: want a positive number, got ${cfg[k]}`);
    }
    if (!Number.isFinite(cfg.maxBatchWaitMs) || cfg.maxBatchWaitMs < 0) problems.push(`maxBatchWaitMs: want >= 0, got ${cfg.maxBatchWaitMs}`);
    if (cfg.compression !== 'none' && cfg.compression !== 'gzip') problems.push(`compression: none or gzip, got ${cfg.compression}`);
    if (!cfg.topic) problems.push('topic: empty');
    if (!cfg.dropTopic) problems.push('dropTopic: empty');
    if (problems.length > 0) throw new Error(`KafkaExporter: invalid config: ${problems.join('; ')}`);
    this.cfg = cfg;
    this.transport =
      config.transport ??
      new KafkaJSTransport({
        brokers: cfg.brokers,
        clientId: cfg.clientId,
        ssl: cfg.ssl,
        sasl: cfg.sasl,
        compression: cfg.compression,
        connectionTimeoutMs: cfg.connectionTimeoutMs,
        requestTimeoutMs: cfg.requestTimeoutMs,
        log: (message, extra) => this.logger.debug(message, extra),
      });
    this.instance = cfg.clientId;
    this.bufferFull = `buffer full (maxBufferSize ${cfg.maxBufferSize}, maxBufferBytes ${cfg.maxBufferBytes})`;
  }

  init(options: InitExporterOptions): void {
    this.emitDropEvent = options.emitDropEvent;
    const service = options.config?.serviceName;
    if (service) this.instance = `${service}/${this.cfg.clientId}`;
  }

  __setLogger(logger: Logger): void {
    this.logger = logger;
  }

  onTracingEvent(event: TracingEvent): void {
    this.enqueue(event, 'tracing', event?.exportedSpan?.traceId, 'exportedSpan');
  }

  async exportTracingEvent(event: TracingEvent): Promise<void> {
    this.onTracingEvent(event);
  }

  onLogEvent(event: LogEvent): void {
    this.enqueue(event, 'log', event?.log?.traceId, 'log');
  }

  onMetricEvent(event: MetricEvent): void {
    this.enqueue(event, 'metric', event?.metric?.traceId, 'metric');
  }

  onScoreEvent(event: ScoreEvent): void {
    this.enqueue(event, 'score', event?.score?.traceId, 'score');
  }

  onFeedbackEvent(event: FeedbackEvent): void {
    this.enqueue(event, 'feedback', event?.feedback?.traceId, 'feedback');
  }

  /** A snapshot of the counters. */
  stats(): KafkaExporterStats {
    return {
      ...this.stat,
      droppedBy: { ...this.stat.droppedBy },
      buffered: this.queue.length - this.head + this.inFlight.length,
      bufferedBytes: this.queuedBytes,
    };
  }

  /**
   * Resolves once every event emitted before the call is acknowledged by Kafka or
   * dropped (after at most deliveryTimeoutMs), drops are reported to Mastra, and drop
   * events are on the drop topic if Kafka takes them in that time. Never rejects.
   */
  async flush(): Promise<void> {
    try {
      const target = this.seq;
      this.reportMastraDrops();
      this.kick(true);
      // Polling keeps flush off the hot path; it ends: every record settles by its deadline.
      while (this.settledSeq < target) await sleep(5);
      const until = Date.now() + this.cfg.requestTimeoutMs;
      while (this.kafkaDrops.size > 0 && !this.outageSince && !this.closed && Date.now() < until) {
        this.kick(true);
        await sleep(5);
      }
      this.reportMastraDrops();
    } catch (err) {
      this.logger.error('KafkaExporter: flush failed', { error: errorText(err) });
    }
  }

  /** flush(), then closes the Kafka connection; later events are dropped and reported. */
  async shutdown(): Promise<void> {
    await this.flush();
    this.closed = true;
    clearTimeout(this.dropTimer);
    clearTimeout(this.lingerTimer);
    clearTimeout(this.retryTimer);
    const pending = [...this.kafkaDrops.values()].reduce((n, t) => n + t.count, 0);
    if (pending > 0) {
      this.logger.warn(`KafkaExporter: ${pending} dropped events were reported to Mastra but could not be published to ${this.cfg.dropTopic}`);
    }
    await this.transport.disconnect().catch((err) => this.logger.debug('KafkaExporter: disconnect', { error: errorText(err) }));
  }

  private enqueue(event: unknown, signal: ObservabilityDropSignal, traceId: string | undefined, body: string): void {
    try {
      this.stat.emitted++;
      if (this.closed) {
        this.drop(signal, 'producer-send-failed', 1, traceId, 'the exporter is shut down');
        return;
      }
      // Checked before serializing too: with Kafka away, a full buffer costs no JSON.stringify.
      if (this.queue.length - this.head + this.inFlight.length >= this.cfg.maxBufferSize) {
        this.drop(signal, 'producer-buffer-full', 1, traceId, this.bufferFull);
        return;
      }
      let value: string | undefined;
      try {
        value = toJSON(event, body);
      } catch (err) {
        this.drop(signal, 'producer-encode-error', 1, traceId, errorText(err));
        return;
      }
      if (typeof value !== 'string') {
        this.drop(signal, 'producer-encode-error', 1, traceId, `${typeof event} is not a JSON value`);
        return;
      }
      // UTF-8 bytes, not string length: requests must stay under the broker's limit
      // also for text that is mostly multi-byte (a refused request fails every record in it).
      const bytes = Buffer.byteLength(value);
      if (bytes > this.cfg.maxRecordBytes) {
        this.drop(signal, 'too-large', 1, traceId, `${bytes} bytes > maxRecordBytes ${this.cfg.maxRecordBytes}`);
        return;
      }
      if (this.queuedBytes + bytes > this.cfg.maxBufferBytes) {
        this.drop(signal, 'producer-buffer-full', 1, traceId, this.bufferFull);
        return;
      }
      this.queue.push({
        out: { topic: this.cfg.topic, key: traceId || null, value, headers: HEADERS },
        bytes,
        signal,
        traceId,
        deadline: Date.now() + this.cfg.deliveryTimeoutMs,
        seq: ++this.seq,
      });
      this.queuedBytes += bytes;
      this.kick(false);
    } catch (err) {
      // Nothing reaches the application; a bug of ours, still counted as a drop.
      this.logger.error('KafkaExporter: enqueue failed', { error: errorText(err) });
      this.drop(signal, 'producer-encode-error', 1, traceId, errorText(err));
    }
  }

  /** Starts the sender now, or once the linger of the oldest queued event is over. */
  private kick(now: boolean): void {
    if (now) this.urgentSeq = this.seq;
    if (this.pumping || this.closed) return;
    const wait = this.lingerLeft();
    if (wait === Infinity) return; // nothing to send
    if (wait <= 0) {
      clearTimeout(this.lingerTimer);
      this.lingerTimer = undefined;
      void this.pump();
      return;
    }
    if (this.lingerTimer === undefined) {
      this.lingerTimer = setTimeout(() => {
        this.lingerTimer = undefined;
        this.kick(false);
      }, wait);
      this.lingerTimer.unref?.();
    }
  }

  /**
   * How long the next request should wait for a fuller batch (<= 0: send now). Every
   * request waits, not only the first after a pause: a request costs kafkajs about as
   * much CPU as a few hundred records, so full requests are what keeps the app's CPU low
   * under load. flush() and pending drop events cut the wait short.
   */
  private lingerLeft(): number {
    if (this.kafkaDrops.size > 0) return 0;
    const waiting = this.queue.length - this.head;
    if (waiting === 0) return Infinity;
    const first = this.queue[this.head]!;
    if (waiting >= this.cfg.maxBatchSize || this.queuedBytes >= this.cfg.maxBatchBytes || first.seq <= this.urgentSeq) return 0;
    return first.deadline - this.cfg.deliveryTimeoutMs + this.cfg.maxBatchWaitMs - Date.now();
  }

  /** The one sender: sends the head of the queue until it is empty. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (;;) {
        if (this.inFlight.length === 0) {
          if (this.lingerLeft() > 0) break;
          this.takeBatch();
        }
        const drops = this.dropRecords();
        if (this.inFlight.length === 0 && drops.length === 0) break;
        try {
          await this.transport.send(drops.length > 0 ? [...drops.map((d) => d.rec), ...this.inFlight.map((r) => r.out)] : this.inFlight.map((r) => r.out));
          this.stat.acked += this.inFlight.length;
          this.settle(this.inFlight);
          this.inFlight = [];
          for (const d of drops) this.published(d.key, d.tally);
          if (this.outageSince) {
            this.logger.info(`KafkaExporter: Kafka accepts events again after ${Date.now() - this.outageSince} ms`);
            this.outageSince = 0;
          }
          this.attempt = 0;
        } catch (err) {
          await this.failed(err);
          if (this.inFlight.length === 0 && this.queue.length === this.head) {
            // Only drop events are left: retry them later rather than spin.
            this.retryLater();
            break;
          }
        }
      }
    } finally {
      this.pumping = false;
      if (this.queue.length > this.head) this.kick(false);
    }
  }

  private retryLater(): void {
    if (this.retryTimer !== undefined || this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.kick(true);
    }, 1000);
    this.retryTimer.unref?.();
  }

  /** Moves the next batch from the queue to inFlight (bounded by count and bytes). */
  private takeBatch(): void {
    let bytes = 0;
    let i = this.head;
    while (i < this.queue.length && i - this.head < this.cfg.maxBatchSize) {
      const b = this.queue[i]!.bytes;
      if (i > this.head && bytes + b > this.cfg.maxBatchBytes) break;
      bytes += b;
      i++;
    }
    this.inFlight = this.queue.slice(this.head, i);
    this.head = i;
    if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  /**
   * After a failed send: report the outage once, give up on the batch when its oldest
   * event is past its deadline (and on queued events past theirs), then wait a backoff.
   */
  private async failed(err: unknown): Promise<void> {
    const now = Date.now();
    if (!this.outageSince) {
      this.outageSince = now;
      this.logger.warn(`KafkaExporter: Kafka did not accept events: ${errorText(err)}; buffering up to ${this.cfg.maxBufferSize} events for ${this.cfg.deliveryTimeoutMs} ms each`);
    }
    const msg = errorText(err);
    if (this.inFlight.length > 0 && this.inFlight[0]!.deadline <= now) {
      this.dropRecs(this.inFlight, msg);
      this.settle(this.inFlight);
      this.inFlight = [];
      // The records may have reached the log without an answer: a new producer id
      // keeps the next batch from being taken for their duplicate.
      await this.transport.reset().catch(() => {});
    }
    if (this.inFlight.length === 0) {
      let i = this.head;
      while (i < this.queue.length && this.queue[i]!.deadline <= now) i++;
      if (i > this.head) {
        const expired = this.queue.slice(this.head, i);
        this.head = i;
        this.dropRecs(expired, msg);
        this.settle(expired);
      }
    }
    this.reportMastraDrops();
    this.attempt++;
    const delay = Math.min(100 * 2 ** Math.min(this.attempt - 1, 5), 2000);
    await new Promise<void>((resolve) => setTimeout(resolve, delay * (0.8 + 0.4 * Math.random())));
  }

  private settle(recs: Rec[]): void {
    for (const r of recs) this.queuedBytes -= r.bytes;
    if (recs.length > 0) this.settledSeq = recs[recs.length - 1]!.seq;
  }

  private dropRecs(recs: Rec[], error: string): void {
    for (const r of recs) this.drop(r.signal, 'producer-send-failed', 1, r.traceId, error);
  }

  private drop(signal: ObservabilityDropSignal, reason: KafkaDropReason, count: number, traceId: string | undefined, error: string): void {
    this.stat.dropped += count;
    const k = `${signal}\u0000${reason}`;
    this.stat.droppedBy[`${signal}/${reason}`] = (this.stat.droppedBy[`${signal}/${reason}`] ?? 0) + count;
    for (const m of [this.mastraDrops, this.kafkaDrops]) {
      const now = Date.now();
      let t = m.get(k);
      if (!t) {
        t = { signal, reason, count: 0, firstTime: now, lastTime: now, sampleTraceIds: [] };
        m.set(k, t);
      }
      t.count += count;
      t.lastTime = now;
      t.error = error;
      if (traceId && t.sampleTraceIds.length < MAX_SAMPLE_TRACE_IDS && !t.sampleTraceIds.includes(traceId)) t.sampleTraceIds.push(traceId);
    }
    if (this.dropTimer === undefined && !this.closed) {
      this.dropTimer = setTimeout(() => {
        this.dropTimer = undefined;
        this.reportMastraDrops();
        this.kick(true);
      }, this.cfg.dropReportIntervalMs);
      this.dropTimer.unref?.();
    }
  }

  /** Reports the drops tallied so far through Mastra, one event per signal and reason. */
  private reportMastraDrops(): void {
    if (this.mastraDrops.size === 0) return;
    const tallies = [...this.mastraDrops.values()];
    this.mastraDrops.clear();
    for (const t of tallies) {
      const ev: KafkaDropEvent = {
        type: 'drop',
        signal: t.signal,
        reason: t.reason,
        count: t.count,
        timestamp: new Date(t.lastTime),
        exporterName: this.name,
        error: t.error ? { message: t.error } : undefined,
      };
      try {
        if (this.emitDropEvent) this.emitDropEvent(ev as unknown as ObservabilityDropEvent);
        else this.logger.warn(`KafkaExporter: dropped ${t.count} ${t.signal} events (${t.reason}): ${t.error ?? ''}`);
      } catch (err) {
        this.logger.error('KafkaExporter: emitDropEvent failed', { error: errorText(err) });
      }
    }
  }

  /** The spanpipe drop events to publish with the next request (taken out of the tally). */
  private dropRecords(): Array<{ key: string; tally: DropTally; rec: OutRecord }> {
    if (this.kafkaDrops.size === 0) return [];
    const out: Array<{ key: string; tally: DropTally; rec: OutRecord }> = [];
    for (const [key, t] of this.kafkaDrops) {
      const body = {
        type: 'drop',
        schemaVersion: 1,
        signal: t.signal,
        reason: t.reason,
        count: t.count,
        firstTime: new Date(t.firstTime).toISOString(),
        lastTime: new Date(t.lastTime).toISOString(),
        component: 'producer',
        instance: this.instance,
        error: t.error ? sanitize(t.error) : undefined,
        sampleTraceIds: t.sampleTraceIds.length > 0 ? t.sampleTraceIds : undefined,
      };
      out.push({
        key,
        tally: { ...t, sampleTraceIds: [...t.sampleTraceIds] },
        rec: {
          topic: this.cfg.dropTopic,
          key: t.reason,
          value: JSON.stringify(body),
          headers: { 'spanpipe-kind': 'drop-event', 'spanpipe-drop-reason': t.reason, 'spanpipe-component': 'producer' },
        },
      });
    }
    return out;
  }

  /** Subtracts a published drop event from the tally (drops counted meanwhile stay). */
  private published(key: string, sent: DropTally): void {
    this.stat.dropEventsPublished += sent.count;
    const t = this.kafkaDrops.get(key);
    if (!t) return;
    t.count -= sent.count;
    if (t.count <= 0) this.kafkaDrops.delete(key);
    else {
      t.firstTime = sent.lastTime;
      t.sampleTraceIds = t.sampleTraceIds.filter((id) => !sent.sampleTraceIds.includes(id));
    }
  }
}

/**
 * JSON.stringify(event), the same text, faster. JSON.stringify turns a Date into text by
 * calling its toJSON, which costs it ~10× what toISOString alone does (1.5 µs a Date
 * on a loaded 2-core machine; a Mastra event of ~450 bytes took 7 µs, its one or two
 * Dates most of it). So the Dates directly on the event's body (a span's startTime and
 * endTime, a log's, metric's, score's or feedback's timestamp) are written as
 * Date.prototype.toJSON would, into shallow copies of the event and its body (Mastra
 * hands the same objects to every exporter: they are not changed). Only plain objects
 * and untouched Dates are copied; anything else is left to JSON.stringify. Nested Dates
 * (in attributes, metadata, ...) are left to JSON.stringify too.
 */
export function toJSON(event: unknown, body: string): string | undefined {
  if (!isPlain(event)) return JSON.stringify(event);
  const inner = event[body];
  if (!isPlain(inner)) return JSON.stringify(event);
  let copy: Record<string, unknown> | undefined;
  for (const k of Object.keys(inner)) {
    const v = inner[k];
    if (v instanceof Date && isPlainDate(v)) {
      copy ??= { ...inner };
      copy[k] = Number.isFinite(v.getTime()) ? v.toISOString() : null;
    }
  }
  return JSON.stringify(copy ? { ...event, [body]: copy } : event);
}

const objectProto = Object.prototype;
const dateProto = Date.prototype;

function isPlain(o: unknown): o is Record<string, unknown> {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return false;
  const proto = Object.getPrototypeOf(o);
  return (proto === objectProto || proto === null) && !Object.hasOwn(o, 'toJSON');
}

/** A Date whose JSON text is its toISOString() (or null when invalid): nothing overridden. */
function isPlainDate(d: Date): boolean {
  return (
    Object.getPrototypeOf(d) === dateProto &&
    d.toJSON === dateProto.toJSON &&
    d.toISOString === dateProto.toISOString &&
    d.valueOf === dateProto.valueOf &&
    (d as unknown as Record<symbol, unknown>)[Symbol.toPrimitive] === dateProto[Symbol.toPrimitive]
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function errorText(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** One line, at most 512 bytes, no URL credentials: what spanpipe puts in drop events. */
function sanitize(s: string): string {
  let line = s.split('\n', 1)[0]!.replace(/:\/\/[^\s/@"']+@/g, '://***@');
  if (Buffer.byteLength(line) > 512) line = Buffer.from(line).subarray(0, 512).toString().replace(/\uFFFD$/, '') + '…';
  return line;
}
