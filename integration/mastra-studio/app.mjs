// A Mastra application for integration/mastra_studio_test.go: real Mastra
// observability (pinned in package-lock.json) with two exporters side by side, so
// that both paths see the very same events (same ids, same timestamps):
//   - Mastra's own MastraStorageExporter, storing through @mastra/clickhouse's
//     ClickhouseStoreVNext into database DB_A (Mastra's init() creates its tables);
//   - @spanpipe/mastra's KafkaExporter, publishing to TOPIC for `spanpipe consume`
//     with layout mastra into database DB_B.
//
// MODE=both     TRACES rich traces through both exporters (the comparison).
// MODE=storage  TRACES light traces through MastraStorageExporter only (its throughput).
// MODE=kafka    TRACES light traces through the KafkaExporter only (spanpipe's input).
//
// Environment: CH_URL (HTTP), DB_A, DISABLE_INIT, BROKERS, TOPIC, DROP_TOPIC, TRACES, MODE. The last
// stdout line is a JSON summary.
import { Mastra } from '@mastra/core/mastra';
import { SpanType } from '@mastra/core/observability';
import { MastraStorageExporter, Observability } from '@mastra/observability';
import { ClickhouseStoreVNext } from '@mastra/clickhouse';
import { KafkaExporter } from '@spanpipe/mastra';

const env = (k, d) => process.env[k] ?? d;
const mode = env('MODE', 'both');
const traces = Number(env('TRACES', 12));

let appExceptions = 0;
process.on('uncaughtException', (err) => {
  appExceptions++;
  console.error('uncaught exception:', err);
});
process.on('unhandledRejection', (err) => {
  appExceptions++;
  console.error('unhandled rejection:', err);
});

const drops = {};
const exporters = [];
let kafka;
if (mode !== 'storage') {
  kafka = new KafkaExporter({
    brokers: env('BROKERS', '127.0.0.1:9092').split(','),
    topic: env('TOPIC', 'spanpipe.spans'),
    dropTopic: env('DROP_TOPIC', 'spanpipe.drops'),
    clientId: 'mastra-studio-proof',
    dropReportIntervalMs: 200,
  });
  exporters.push(kafka);
}
let storage;
if (mode !== 'kafka') {
  // DISABLE_INIT=1: the tables exist already (init() costs seconds on a busy server).
  storage = new ClickhouseStoreVNext({ id: 'studio-a', url: env('CH_URL'), username: 'default', password: '', database: env('DB_A'), disableInit: env('DISABLE_INIT') === '1' });
  exporters.push(new MastraStorageExporter());
}
exporters.push({
  name: 'drop-counter',
  onDroppedEvent: (ev) => (drops[`${ev.signal}/${ev.reason}`] = (drops[`${ev.signal}/${ev.reason}`] ?? 0) + ev.count),
  exportTracingEvent: async () => {},
  flush: async () => {},
  shutdown: async () => {},
});

const observability = new Observability({ configs: { default: { serviceName: 'studio-proof', exporters } } });
new Mastra({ observability, logger: false, ...(storage ? { storage } : {}) });
if (storage && env('DISABLE_INIT') !== '1') await storage.init();
const obs = observability.getDefaultInstance();

// rich: every signal and the shapes Studio filters on (entity, metadata ids, tags,
// errors in children, event spans, workflow branches, legacy score/feedback names).
async function trace(i, rich) {
  const root = obs.startSpan({
    type: SpanType.AGENT_RUN,
    name: `support agent ${i}`,
    entityType: 'agent',
    entityId: `agent-${i % 3}`,
    entityName: i % 2 ? 'support' : 'billing',
    input: { messages: [{ role: 'user', content: `question ${i}` }] },
    metadata: { userId: `user-${i % 5}`, threadId: `thread-${i}`, resourceId: `res-${i % 2}`, sessionId: 's1', environment: i % 3 ? 'prod' : 'staging', region: `r${i % 2}`, custom: { n: i } },
    tags: ['proof', `t${i % 2}`],
    attributes: { conversationId: `conv-${i}`, maxSteps: 5 },
  });
  const llm = root.createChildSpan({
    type: SpanType.MODEL_GENERATION,
    name: 'llm',
    input: { prompt: `prompt ${i}` },
    attributes: { model: 'gpt-4o-mini', provider: 'openai', streaming: true },
  });
  llm.end({
    output: { text: `answer ${i}` },
    attributes: { model: 'gpt-4o-mini', provider: 'openai', usage: { inputTokens: 12 + i, outputTokens: 34 }, finishReason: 'stop' },
  });
  const tool = root.createChildSpan({ type: SpanType.TOOL_CALL, name: 'lookup', input: { id: i }, attributes: { toolType: 'function' } });
  if (i % 3 === 0) tool.error({ error: new Error(`lookup ${i} failed`), endSpan: true });
  else tool.end({ output: { found: true }, attributes: { toolType: 'function', success: true } });
  if (rich) {
    root.createEventSpan({ type: SpanType.AGENT_SIGNAL, name: 'signal', output: { state: 'thinking', step: i } });
    const wf = root.createChildSpan({ type: SpanType.WORKFLOW_RUN, name: 'wf', entityType: 'workflow_run', entityName: 'pipeline', input: { i } });
    const step = wf.createChildSpan({ type: SpanType.WORKFLOW_STEP, name: 'step-1', input: { i } });
    step.end({ output: { ok: true }, attributes: { status: 'success' } });
    wf.end({ output: { done: true }, attributes: { status: 'success' } });
    // Started, never ended: neither store can hold it (insert-only).
    if (i === 0) root.createChildSpan({ type: SpanType.PROCESSOR_RUN, name: 'never-ended', input: { i } });

    const logs = obs.getLoggerContext(root);
    logs.warn(`slow tool ${i}`, { ms: 1200 + i });
    if (i % 2) logs.error(`error ${i}`, { code: 'E1', nested: { a: [1, 2] } });
    const metrics = obs.getMetricsContext(root);
    metrics.emit('proof_latency_ms', 100 + i, { route: i % 2 ? 'a' : 'b' });
    metrics.emit('proof_nolabels', 1);
    const cc = root.getCorrelationContext();
    const legacy = i % 2 === 0;
    await observability.addScore({
      traceId: root.traceId,
      spanId: root.id,
      correlationContext: cc,
      score: legacy
        ? { scorerId: 'relevance', scorerName: 'Relevance', score: 0.25 * (i % 4), reason: 'legacy names', source: 'live', experimentId: `exp-${i}`, metadata: { judge: 'm' } }
        : { scorerId: 'relevance', scorerName: 'Relevance', scorerVersion: 'v2', score: 0.9, reason: 'ok', scoreSource: 'trace', targetEntityType: 'agent', scoreTraceId: root.traceId },
    });
    await observability.addFeedback({
      traceId: root.traceId,
      spanId: root.id,
      correlationContext: cc,
      feedback: legacy
        ? { feedbackType: 'thumbs', value: 'up', comment: 'nice', source: 'ui', userId: `fb-user-${i}`, experimentId: `exp-${i}`, sourceId: `msg-${i}` }
        : { feedbackType: 'rating', value: 4, feedbackSource: 'api', feedbackUserId: `fb-user-${i}`, metadata: { via: 'api' } },
    });
  }
  root.end({ output: { text: `done ${i}` } });
}

const cpu0 = process.cpuUsage();
const t0 = Date.now();
for (let i = 0; i < traces; i++) await trace(i, mode === 'both');
const emitMs = Date.now() - t0;
await observability.flush();
const flushedMs = Date.now() - t0;
await observability.shutdown();
const cpu = process.cpuUsage(cpu0);
process.stdout.write(
  JSON.stringify({
    mode,
    traces,
    emitMs,
    flushedMs,
    cpuMs: Math.round((cpu.user + cpu.system) / 1000),
    kafka: kafka ? kafka.stats() : null,
    drops,
    appExceptions,
  }) + '\n',
  () => process.exit(0),
);
