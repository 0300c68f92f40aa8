// Unit tests of KafkaExporter against a fake transport (the real-broker tests are in
// integration/mastra_test.go). Run: npm test (after npm run build).
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';

import { KafkaExporter } from '../dist/esm/index.js';

/** A transport whose behaviour the test switches: 'ok', 'fail' or 'hang'. */
class FakeTransport {
  mode = 'ok';
  sent = [];
  requests = [];
  resets = 0;
  disconnected = false;
  hung = [];
  async connect() {}
  async send(records) {
    this.requests.push(records.length);
    if (this.mode === 'fail') throw new Error('connect ECONNREFUSED 127.0.0.1:9092');
    if (this.mode === 'hang') await new Promise((resolve) => this.hung.push(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    this.sent.push(...records);
  }
  async reset() {
    this.resets++;
  }
  async disconnect() {
    this.disconnected = true;
  }
  release() {
    this.mode = 'ok';
    for (const r of this.hung.splice(0)) r();
  }
  data() {
    return this.sent.filter((r) => r.topic === 'spans');
  }
  drops() {
    return this.sent.filter((r) => r.topic === 'drops').map((r) => ({ ...JSON.parse(r.value), headers: r.headers, key: r.key }));
  }
}

function setup(opts = {}) {
  const transport = new FakeTransport();
  const reported = [];
  const exporter = new KafkaExporter({ brokers: ['127.0.0.1:9092'], topic: 'spans', dropTopic: 'drops', transport, maxBatchWaitMs: 0, dropReportIntervalMs: 10, ...opts });
  exporter.__setLogger({ debug() {}, info() {}, warn() {}, error() {} });
  exporter.init({ config: { serviceName: 'svc' }, emitDropEvent: (ev) => reported.push(ev) });
  return { exporter, transport, reported };
}

const span = (type, traceId, id, extra = {}) => ({
  type,
  exportedSpan: { traceId, id, name: 'n', type: 'agent_run', startTime: new Date('2026-01-02T03:04:05.678Z'), isEvent: false, isRootSpan: true, ...extra },
});
const sumBy = (evs, key) => evs.reduce((m, e) => ({ ...m, [e[key]]: (m[e[key]] ?? 0) + e.count }), {});
const waitFor = async (cond, what) => {
  const until = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

test('every signal is published as JSON.stringify(event), keyed by trace id, with the codec header', async () => {
  const { exporter, transport } = setup();
  const events = [
    ['onTracingEvent', span('span_started', 'a'.repeat(32), 'b'.repeat(16), { input: { q: 'é😀' } })],
    ['onLogEvent', { type: 'log', log: { logId: 'l1', timestamp: new Date(0), traceId: 't-log', level: 'warn', message: 'm' } }],
    ['onMetricEvent', { type: 'metric', metric: { metricId: 'm1', timestamp: new Date(0), name: 'x', value: 1, labels: {} } }],
    ['onScoreEvent', { type: 'score', score: { scoreId: 's1', timestamp: new Date(0), traceId: 't-score', scorerId: 'r', score: 0.5, source: 'live' } }],
    ['onFeedbackEvent', { type: 'feedback', feedback: { feedbackId: 'f1', timestamp: new Date(0), traceId: 't-fb', feedbackType: 'thumbs', value: 'up', userId: 'u' } }],
  ];
  for (const [hook, ev] of events) assert.equal(exporter[hook](ev), undefined, `${hook} returns nothing to await`);
  await exporter.flush();
  const data = transport.data();
  assert.deepEqual(
    data.map((r) => r.value),
    events.map(([, ev]) => JSON.stringify(ev)),
  );
  assert.deepEqual(
    data.map((r) => r.key),
    ['a'.repeat(32), 't-log', null, 't-score', 't-fb'],
  );
  for (const r of data) assert.deepEqual(r.headers, { 'spanpipe-codec': 'json' });
  assert.equal(exporter.stats().acked, 5);
  assert.equal(exporter.stats().dropped, 0);
});

test('exportTracingEvent (the interface method) publishes as onTracingEvent does', async () => {
  const { exporter, transport } = setup();
  await exporter.exportTracingEvent(span('span_ended', 't1', 's1'));
  await exporter.flush();
  assert.equal(transport.data().length, 1);
});

test('flush waits for the acknowledgement of every event emitted before it', async () => {
  const { exporter, transport } = setup();
  transport.mode = 'hang';
  for (let i = 0; i < 10; i++) exporter.onTracingEvent(span('span_ended', `t${i}`, 's'));
  let flushed = false;
  const f = exporter.flush().then(() => (flushed = true));
  await waitFor(() => transport.hung.length > 0, 'a request in flight');
  assert.equal(flushed, false, 'flush resolved before Kafka acknowledged');
  transport.release();
  await f;
  assert.equal(transport.data().length, 10);
});

test('maxBatchBytes counts UTF-8 bytes, not string length', async () => {
  const { exporter, transport } = setup({ maxBatchBytes: 3000 });
  transport.mode = 'hang';
  exporter.onTracingEvent(span('span_ended', 't', 'first'));
  await waitFor(() => transport.hung.length === 1, 'the first request');
  // 700 three-byte characters: ~800 UTF-16 units but ~2.2 KB each.
  for (let i = 0; i < 3; i++) exporter.onTracingEvent(span('span_ended', 't', `s${i}`, { output: '文'.repeat(700) }));
  transport.release();
  await exporter.flush();
  assert.deepEqual(transport.requests, [1, 1, 1, 1]);
});

test('requests respect maxBatchSize and maxBatchBytes', async () => {
  const { exporter, transport } = setup({ maxBatchSize: 4, maxBatchBytes: 2000 });
  transport.mode = 'hang';
  exporter.onTracingEvent(span('span_ended', 't', 'first'));
  await waitFor(() => transport.hung.length === 1, 'the first request');
  for (let i = 0; i < 9; i++) exporter.onTracingEvent(span('span_ended', 't', `s${i}`));
  exporter.onTracingEvent(span('span_ended', 't', 'big', { output: 'x'.repeat(3000) }));
  transport.release();
  await exporter.flush();
  // 1, then 4, 4, 1 by count, and the 3 KB event alone (over maxBatchBytes).
  assert.deepEqual(transport.requests, [1, 4, 4, 1, 1]);
});

test('under load every request waits for a full batch, not only the first; flush does not wait', async () => {
  const { exporter, transport } = setup({ maxBatchSize: 5, maxBatchWaitMs: 60_000 });
  transport.mode = 'hang';
  for (let i = 0; i < 5; i++) exporter.onTracingEvent(span('span_ended', 't', `a${i}`));
  await waitFor(() => transport.hung.length === 1, 'the first, full, request');
  for (let i = 0; i < 2; i++) exporter.onTracingEvent(span('span_ended', 't', `b${i}`));
  transport.release();
  await waitFor(() => exporter.stats().acked === 5, 'the first request acknowledged');
  // The 2 queued events wait for 3 more rather than going alone.
  for (let i = 0; i < 4; i++) exporter.onTracingEvent(span('span_ended', 't', `c${i}`));
  await waitFor(() => exporter.stats().acked === 10, 'the second, full, request');
  const start = Date.now();
  await exporter.flush();
  assert.ok(Date.now() - start < 30_000, 'flush sent the last event without waiting maxBatchWaitMs');
  assert.deepEqual(transport.requests, [5, 5, 1]);
});

test('once the queue is empty, no timer spins', async () => {
  const warnings = [];
  const onWarning = (w) => warnings.push(w.name);
  process.on('warning', onWarning);
  try {
    const { exporter, transport } = setup({ maxBatchWaitMs: 20, maxRecordBytes: 300 });
    exporter.onTracingEvent(span('span_ended', 't', 's'));
    exporter.onTracingEvent(span('span_ended', 't', 'big', { output: 'x'.repeat(400) }));
    await exporter.flush();
    assert.equal(transport.drops().length, 1);
    // The drop report timer (10 ms) fires after flush() published everything: it must
    // find nothing to send and arm nothing.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(transport.data().length, 1);
    assert.deepEqual(warnings, []);
  } finally {
    process.off('warning', onWarning);
  }
});

test('a full buffer drops new events and reports them per signal, through Mastra and on the drop topic', async () => {
  const { exporter, transport, reported } = setup({ maxBufferSize: 5 });
  transport.mode = 'hang';
  for (let i = 0; i < 8; i++) exporter.onTracingEvent(span('span_started', `trace-${i}`, 's'));
  for (let i = 0; i < 3; i++) exporter.onLogEvent({ type: 'log', log: { logId: `l${i}`, timestamp: new Date(), level: 'warn', message: 'm' } });
  assert.equal(exporter.stats().dropped, 6);
  await waitFor(() => reported.length === 2, 'the drops reported through Mastra');
  assert.deepEqual(sumBy(reported, 'signal'), { tracing: 3, log: 3 });
  for (const ev of reported) {
    assert.equal(ev.type, 'drop');
    assert.equal(ev.reason, 'producer-buffer-full');
    assert.equal(ev.exporterName, 'spanpipe-kafka-exporter');
    assert.ok(ev.timestamp instanceof Date);
    assert.match(ev.error.message, /buffer full/);
  }
  transport.release();
  await exporter.flush();
  assert.equal(transport.data().length, 5);
  const drops = transport.drops();
  assert.deepEqual(sumBy(drops, 'signal'), { tracing: 3, log: 3 });
  const tracing = drops.find((d) => d.signal === 'tracing');
  assert.equal(tracing.type, 'drop');
  assert.equal(tracing.schemaVersion, 1);
  assert.equal(tracing.reason, 'producer-buffer-full');
  assert.equal(tracing.component, 'producer');
  assert.equal(tracing.instance, 'svc/spanpipe-mastra');
  assert.deepEqual(tracing.sampleTraceIds, ['trace-5', 'trace-6', 'trace-7']);
  assert.ok(Date.parse(tracing.firstTime) <= Date.parse(tracing.lastTime));
  assert.equal(tracing.key, 'producer-buffer-full');
  assert.deepEqual(tracing.headers, { 'spanpipe-kind': 'drop-event', 'spanpipe-drop-reason': 'producer-buffer-full', 'spanpipe-component': 'producer' });
});

test('with the buffer full, events are dropped without being serialized', async () => {
  const { exporter, transport, reported } = setup({ maxBufferSize: 1 });
  transport.mode = 'hang';
  exporter.onTracingEvent(span('span_ended', 't', 'queued'));
  let serialized = 0;
  const costly = span('span_ended', 't', 'late', { output: { toJSON: () => (serialized++, 'x') } });
  for (let i = 0; i < 3; i++) exporter.onTracingEvent(costly);
  assert.equal(serialized, 0);
  await waitFor(() => reported.length === 1, 'the drops reported through Mastra');
  assert.deepEqual([reported[0].reason, reported[0].count], ['producer-buffer-full', 3]);
  transport.release();
  await exporter.flush();
});

test('Kafka unreachable past the delivery timeout: events are dropped, flush returns, drops are published once Kafka is back', async () => {
  const { exporter, transport, reported } = setup({ deliveryTimeoutMs: 150 });
  transport.mode = 'fail';
  for (let i = 0; i < 7; i++) exporter.onTracingEvent(span('span_ended', `t${i}`, 's'));
  exporter.onMetricEvent({ type: 'metric', metric: { metricId: 'm', timestamp: new Date(), name: 'x', value: 1, labels: {} } });
  const start = Date.now();
  await exporter.flush();
  assert.ok(Date.now() - start < 5000, 'flush is bounded by the delivery timeout');
  assert.equal(exporter.stats().dropped, 8);
  assert.equal(exporter.stats().acked, 0);
  assert.deepEqual(sumBy(reported, 'signal'), { tracing: 7, metric: 1 });
  assert.ok(reported.every((e) => e.reason === 'producer-send-failed' && /ECONNREFUSED/.test(e.error.message)));
  assert.ok(transport.resets >= 1, 'a new producer session after giving up on a request');
  transport.mode = 'ok';
  exporter.onTracingEvent(span('span_ended', 'after', 's'));
  await exporter.flush();
  assert.deepEqual(sumBy(transport.drops(), 'signal'), { tracing: 7, metric: 1 });
  assert.equal(transport.data().length, 1);
  assert.equal(exporter.stats().dropEventsPublished, 8);
});

test('drop events alone are retried until Kafka takes them', async () => {
  const { exporter, transport } = setup({ deliveryTimeoutMs: 50 });
  transport.mode = 'fail';
  exporter.onTracingEvent(span('span_ended', 't', 's'));
  await exporter.flush();
  transport.mode = 'ok';
  await waitFor(() => transport.drops().length === 1, 'the drop event to be published by the retry timer');
  assert.equal(transport.drops()[0].count, 1);
});

test('events that cannot be serialized or are too large are dropped and reported, never thrown', async () => {
  const { exporter, transport, reported } = setup({ maxRecordBytes: 1000 });
  const circular = span('span_ended', 't', 's');
  circular.exportedSpan.input = circular;
  assert.doesNotThrow(() => exporter.onTracingEvent(circular));
  assert.doesNotThrow(() => exporter.onLogEvent({ type: 'log', log: { logId: 'x', data: 10n } }));
  assert.doesNotThrow(() => exporter.onTracingEvent(span('span_ended', 't', 'big', { output: 'é'.repeat(600) })));
  assert.doesNotThrow(() => exporter.onTracingEvent(undefined));
  await exporter.flush();
  assert.deepEqual(
    Object.fromEntries(reported.map((e) => [`${e.signal}/${e.reason}`, e.count])),
    { 'tracing/producer-encode-error': 2, 'log/producer-encode-error': 1, 'tracing/too-large': 1 },
  );
  assert.equal(transport.data().length, 0);
});

test('after shutdown, events are dropped and reported; the transport is closed', async () => {
  const { exporter, transport, reported } = setup();
  exporter.onTracingEvent(span('span_ended', 't', 's'));
  await exporter.shutdown();
  assert.equal(transport.data().length, 1);
  assert.equal(transport.disconnected, true);
  exporter.onTracingEvent(span('span_ended', 't', 'late'));
  await exporter.flush();
  assert.deepEqual(reported.map((e) => [e.signal, e.reason, e.count]), [['tracing', 'producer-send-failed', 1]]);
});

test('an invalid config names every problem', () => {
  assert.throws(
    () => new KafkaExporter({ brokers: [], maxBufferSize: 0, compression: 'snappy', deliveryTimeoutMs: -1 }),
    (err) =>
      /brokers: at least one/.test(err.message) &&
      /maxBufferSize: want a positive number/.test(err.message) &&
      /compression: none or gzip/.test(err.message) &&
      /deliveryTimeoutMs/.test(err.message),
  );
});

test('the CommonJS build exports the same API', () => {
  const cjs = createRequire(import.meta.url)('../dist/cjs/index.js');
  assert.equal(typeof cjs.KafkaExporter, 'function');
  assert.equal(typeof cjs.KafkaJSTransport, 'function');
  assert.equal(new cjs.KafkaExporter({ brokers: ['h:1'], transport: new FakeTransport() }).name, 'spanpipe-kafka-exporter');
});
