// A Mastra application for the end-to-end tests (integration/mastra_test.go): real
// Mastra observability (@mastra/core, @mastra/observability, pinned in package-lock.json)
// with the built KafkaExporter and, beside it, a recorder exporter that writes every
// event exactly as Mastra handed it to exporters (JSON.stringify, one per line) to OUT:
// the truth the test compares the DuckDB rows with.
//
//   MODE=e2e   TRACES traces covering every signal and the awkward cases, then flush.
//   MODE=load  traces at RATE per second for SECONDS or until the file STOP exists,
//              then flush (the outage test).
//
// Environment: BROKERS, TOPIC, DROP_TOPIC, OUT, and the exporter's options
// (COMPRESSION, MAX_BUFFER_SIZE, DELIVERY_TIMEOUT_MS). The last stdout line is a JSON summary.
import { appendFileSync, closeSync, existsSync, openSync, writeSync } from 'node:fs';

import { Mastra } from '@mastra/core/mastra';
import { SpanType } from '@mastra/core/observability';
import { Observability } from '@mastra/observability';
import { KafkaExporter } from '@spanpipe/mastra';

const env = (k, d) => process.env[k] ?? d;
const mode = env('MODE', 'e2e');

// Anything thrown into the application by observability would land here.
let appExceptions = 0;
process.on('uncaughtException', (err) => {
  appExceptions++;
  console.error('uncaught exception:', err);
});
process.on('unhandledRejection', (err) => {
  appExceptions++;
  console.error('unhandled rejection:', err);
});

const out = openSync(env('OUT', '/dev/null'), 'w');
const recorded = { tracing: 0, log: 0, metric: 0, score: 0, feedback: 0 };
const reportedDrops = {};
const record = (signal) => (event) => {
  recorded[signal]++;
  writeSync(out, JSON.stringify(event) + '\n');
};
const recorder = {
  name: 'e2e-recorder',
  onTracingEvent: record('tracing'),
  onLogEvent: record('log'),
  onMetricEvent: record('metric'),
  onScoreEvent: record('score'),
  onFeedbackEvent: record('feedback'),
  // Mastra's drop-event path: the exporter's drops reach every exporter here.
  onDroppedEvent: (ev) => {
    const k = `${ev.signal}/${ev.reason}`;
    reportedDrops[k] = (reportedDrops[k] ?? 0) + ev.count;
  },
  exportTracingEvent: async () => {},
  flush: async () => {},
  shutdown: async () => {},
};

const exporter = new KafkaExporter({
  brokers: env('BROKERS', '127.0.0.1:9092').split(','),
  topic: env('TOPIC', 'spanpipe.spans'),
  dropTopic: env('DROP_TOPIC', 'spanpipe.drops'),
  clientId: 'e2e-app',
  compression: env('COMPRESSION', 'none'),
  maxBufferSize: Number(env('MAX_BUFFER_SIZE', 10000)),
  deliveryTimeoutMs: Number(env('DELIVERY_TIMEOUT_MS', 30000)),
  dropReportIntervalMs: 200,
});

const observability = new Observability({
  configs: { default: { serviceName: 'e2e-app', exporters: [exporter, recorder] } },
});
// The Mastra instance wires the exporters (init, logger, drop-event path).
new Mastra({ observability, logger: false });
const obs = observability.getDefaultInstance();

// A JavaScript string cut inside an emoji, as streamed LLM chunks often are.
const loneSurrogate = '😀'.slice(0, 1);

async function trace(i, { heavy }) {
  const root = obs.startSpan({
    type: SpanType.AGENT_RUN,
    name: `support agent ${i}`,
    entityType: 'agent',
    entityId: `agent-${i % 3}`,
    entityName: 'support',
    input: { messages: [{ role: 'user', content: `question ${i}` }], password: `hunter${i}`, apiKey: 'sk-123' },
    metadata: { userId: `user-${i % 5}`, threadId: `thread-${i}`, sessionId: 's1', custom: { n: i } },
    tags: ['e2e', `t${i % 2}`],
    attributes: { conversationId: `conv-${i}`, maxSteps: 5 },
  });
  const llm = root.createChildSpan({
    type: SpanType.MODEL_GENERATION,
    name: 'llm',
    input: { prompt: `prompt ${i}` },
    attributes: { model: 'gpt-4o-mini', provider: 'openai', streaming: true },
  });
  llm.update({ attributes: { model: 'gpt-4o-mini', provider: 'openai', streaming: true, responseId: `r${i}` } });
  let text = `answer ${i}`;
  if (heavy && i === 0) text = 'x'.repeat(40 * 1024); // a 40 KB payload
  if (heavy && i === 1) text = `cut emoji ${loneSurrogate} end`;
  llm.end({
    output: { text },
    attributes: { model: 'gpt-4o-mini', provider: 'openai', usage: { inputTokens: 12 + i, outputTokens: 34 }, finishReason: 'stop' },
  });

  const tool = root.createChildSpan({ type: SpanType.TOOL_CALL, name: 'lookup', input: { id: i }, attributes: { toolType: 'function' } });
  if (i % 2 === 0) {
    tool.error({ error: new Error(`lookup ${i} failed`), endSpan: true });
  } else {
    tool.end({ output: { found: true }, attributes: { toolType: 'function', success: true } });
  }
  root.createEventSpan({ type: SpanType.AGENT_SIGNAL, name: 'signal', output: { state: 'thinking', step: i } });

  const wf = root.createChildSpan({ type: SpanType.WORKFLOW_RUN, name: 'wf', input: { i }, attributes: { status: 'running' } });
  const step = wf.createChildSpan({ type: SpanType.WORKFLOW_STEP, name: 'step-1', input: { i } });
  step.end({ output: { ok: true }, attributes: { status: 'success' } });
  wf.end({ output: { done: true }, attributes: { status: 'success' } });

  if (heavy && i === 0) {
    // Started, never ended (a crashed or abandoned run).
    root.createChildSpan({ type: SpanType.PROCESSOR_RUN, name: 'never-ended', input: { i } });
  }

  const logs = obs.getLoggerContext(root);
  logs.warn(`slow tool ${i}`, { ms: 1200 + i });
  if (heavy) logs.error(`error ${i}`, { code: 'E1', nested: { a: [1, 2] } });
  const metrics = obs.getMetricsContext(root);
  metrics.emit('e2e_custom', i + 0.5, { route: 'a' });
  if (heavy) metrics.emit('e2e_nolabels', 1);

  if (heavy) {
    const cc = root.getCorrelationContext();
    const deprecated = i % 2 === 0;
    await observability.addScore({
      traceId: root.traceId,
      spanId: root.id,
      correlationContext: cc,
      score: deprecated
        ? { scorerId: 'relevance', scorerName: 'Relevance', score: 0.25 * (i % 4), reason: 'deprecated names', source: 'live', experimentId: `exp-${i}`, metadata: { judge: 'm' } }
        : { scorerId: 'relevance', scorerName: 'Relevance', scorerVersion: 'v2', score: 0.9, reason: 'ok', scoreSource: 'trace', targetEntityType: 'agent', scoreTraceId: root.traceId },
    });
    await observability.addFeedback({
      traceId: root.traceId,
      spanId: root.id,
      correlationContext: cc,
      feedback: deprecated
        ? { feedbackType: 'thumbs', value: 'up', comment: 'nice', source: 'ui', userId: `fb-user-${i}`, experimentId: `exp-${i}`, sourceId: `msg-${i}` }
        : { feedbackType: 'rating', value: 4, feedbackSource: 'api', feedbackUserId: `fb-user-${i}`, metadata: { via: 'api' } },
    });
  }
  root.end({ output: { text: `done ${i}` } });
}

let maxRss = 0;
const rssTimer = setInterval(() => (maxRss = Math.max(maxRss, process.memoryUsage().rss)), 50);
const cpu0 = process.cpuUsage();
const t0 = Date.now();
let traces = 0;
if (mode === 'e2e') {
  const n = Number(env('TRACES', 20));
  for (let i = 0; i < n; i++) await trace(i, { heavy: true });
  traces = n;
} else {
  const rate = Number(env('RATE', 200));
  const seconds = Number(env('SECONDS', 30));
  const end = t0 + seconds * 1000;
  const rssBefore = process.memoryUsage().rss;
  appendFileSync(env('PROGRESS', '/dev/null'), JSON.stringify({ started: Date.now(), rssBefore }) + '\n');
  const stop = env('STOP', '');
  while (Date.now() < end && !(stop && existsSync(stop))) {
    const due = Math.floor(((Date.now() - t0) / 1000) * rate);
    while (traces < due) await trace(traces++, { heavy: false });
    appendFileSync(env('PROGRESS', '/dev/null'), JSON.stringify({ at: Date.now(), traces, rss: process.memoryUsage().rss, ...exporter.stats() }) + '\n');
    await new Promise((r) => setTimeout(r, 100));
  }
}
const emitMs = Date.now() - t0;
await observability.flush();
await observability.shutdown();
clearInterval(rssTimer);
closeSync(out);
const cpu = process.cpuUsage(cpu0);
console.log(
  JSON.stringify({
    mode,
    traces,
    recorded,
    stats: exporter.stats(),
    reportedDrops,
    appExceptions,
    maxRssMB: Math.round(maxRss / 1048576),
    emitMs,
    totalMs: Date.now() - t0,
    cpuMs: Math.round((cpu.user + cpu.system) / 1000),
  }),
);
