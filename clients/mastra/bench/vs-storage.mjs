// The exporter against Mastra's own MastraStorageExporter → @mastra/duckdb, the same
// workload in one run, one process per case: TRACES agent traces of 4 spans each
// (agent_run → model_generation with an update → tool_call → model_generation) through
// real Mastra observability. Per case: process CPU per span, spans/s including the final
// flush, peak RSS, and the RSS the second half of the loop added. Every case includes
// Mastra's own span work; the "none" case (a no-op exporter) measures it, and the summary
// line subtracts it to give each exporter's own CPU per span. ROUNDS interleaves the
// cases and reports medians. With STALL_PID, the broker process is SIGSTOPped for the
// kafka-stalled case (RSS must stay flat: the exporter's buffer is bounded).
//
//   BROKERS=127.0.0.1:9092 TOPIC=bench EXTRA_MODULES=/dir/node_modules [STALL_PID=P] [ROUNDS=3] node bench/vs-storage.mjs
//
// EXTRA_MODULES holds @mastra/duckdb@1.10.0 with @mastra/core@1.71.0 and
// @mastra/observability@1.17.9 (npm install them there); all cases load Mastra from it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const traces = Number(process.env.TRACES ?? 20000);

if (process.argv[2] !== 'child') {
  // Cases interleave round by round so that a change in the machine's load hits all of
  // them; each figure is the median over ROUNDS.
  const cases = (process.env.CASES ?? 'none,kafka,storage,kafka-stalled').split(',').filter((c) => c !== 'kafka-stalled' || process.env.STALL_PID);
  const rounds = Number(process.env.ROUNDS ?? 1);
  const runs = Object.fromEntries(cases.map((c) => [c, []]));
  for (let r = 0; r < rounds; r++) {
    for (const c of cases) {
      const stall = c === 'kafka-stalled';
      if (stall) process.kill(Number(process.env.STALL_PID), 'SIGSTOP');
      try {
        const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), 'child', c], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
        const line = out.trim().split('\n').pop();
        console.log(line);
        runs[c].push(JSON.parse(line));
      } finally {
        if (stall) process.kill(Number(process.env.STALL_PID), 'SIGCONT');
      }
    }
  }
  const median = (xs) => {
    const v = [...xs].sort((a, b) => a - b);
    return +((v[(v.length - 1) >> 1] + v[v.length >> 1]) / 2).toFixed(3);
  };
  const cpu = Object.fromEntries(cases.map((c) => [c, median(runs[c].map((x) => x.cpuMsPerSpan))]));
  // The exporter's own share: the run's CPU minus Mastra's own span work (the no-op exporter).
  const own = (c) => (cpu[c] !== undefined && cpu.none !== undefined ? +(cpu[c] - cpu.none).toFixed(3) : undefined);
  const summary = { rounds, medianCpuMsPerSpan: cpu, exporterCpuMsPerSpan: Object.fromEntries(cases.filter((c) => c !== 'none').map((c) => [c, own(c)])) };
  if (cpu.kafka !== undefined && cpu.storage !== undefined) {
    summary.storageOverKafka = { wholeProcess: +(cpu.storage / cpu.kafka).toFixed(1), exporterOnly: own('kafka') > 0 ? +(own('storage') / own('kafka')).toFixed(1) : undefined };
  }
  console.log(JSON.stringify(summary));
  process.exit(0);
}

const mode = process.argv[3];
const req = createRequire(join(process.env.EXTRA_MODULES ?? join(fileURLToPath(import.meta.url), '../../node_modules'), 'x.js'));
const { Mastra } = req('@mastra/core/mastra');
const { SpanType } = req('@mastra/core/observability');
const { Observability, MastraStorageExporter } = req('@mastra/observability');
const { KafkaExporter } = createRequire(import.meta.url)('../dist/cjs/index.js');

const exporters = [];
let storage;
let dir;
let kafka;
if (mode.startsWith('kafka')) {
  kafka = new KafkaExporter({ brokers: (process.env.BROKERS ?? '127.0.0.1:9092').split(','), topic: process.env.TOPIC ?? 'bench', dropTopic: process.env.TOPIC ?? 'bench', deliveryTimeoutMs: 10000 });
  exporters.push(kafka);
} else if (mode === 'none') {
  // Mastra requires an exporter: one that does nothing.
  exporters.push({ name: 'noop', onTracingEvent() {}, exportTracingEvent: async () => {}, flush: async () => {}, shutdown: async () => {} });
} else if (mode === 'storage') {
  dir = mkdtempSync(join(tmpdir(), 'bench-duckdb-'));
  storage = new (req('@mastra/duckdb').DuckDBStore)({ path: join(dir, 'mastra.duckdb') });
  exporters.push(new MastraStorageExporter());
}
const observability = new Observability({ configs: { default: { serviceName: 'bench', exporters } } });
new Mastra({ observability, storage, logger: false });
const obs = observability.getDefaultInstance();

let peak = 0;
// memoryUsage.rss() alone: memoryUsage() also walks the V8 heap, which the run would pay for.
const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20);
let rssHalf = 0;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
for (let i = 0; i < traces; i++) {
  const root = obs.startSpan({ type: SpanType.AGENT_RUN, name: 'support agent', input: { q: `where is order ${i}?` }, metadata: { userId: `u${i % 100}` } });
  const llm = root.createChildSpan({ type: SpanType.MODEL_GENERATION, name: 'llm', input: { prompt: `order ${i}` }, attributes: { model: 'gpt-4o-mini', provider: 'openai' } });
  llm.update({ attributes: { model: 'gpt-4o-mini', provider: 'openai', streaming: true } });
  llm.end({ output: { text: `order ${i} ships tomorrow` }, attributes: { model: 'gpt-4o-mini', provider: 'openai', usage: { inputTokens: 800, outputTokens: 90 } } });
  const tool = root.createChildSpan({ type: SpanType.TOOL_CALL, name: 'lookup', input: { order: i } });
  tool.end({ output: { status: 'shipped' } });
  const llm2 = root.createChildSpan({ type: SpanType.MODEL_GENERATION, name: 'llm', input: { prompt: 'summarize' }, attributes: { model: 'gpt-4o-mini', provider: 'openai' } });
  llm2.end({ output: { text: 'done' }, attributes: { model: 'gpt-4o-mini', provider: 'openai', usage: { inputTokens: 900, outputTokens: 20 } } });
  root.end({ output: { text: `order ${i} ships tomorrow` } });
  if (i % 10 === 9) await new Promise((r) => setImmediate(r)); // let I/O run, as an app's event loop does between LLM calls
  if (i === traces >> 1) rssHalf = process.memoryUsage.rss();
}
const rssEnd = process.memoryUsage.rss();
const emitted = performance.now();
await observability.flush();
const wall = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
clearInterval(sampler);
const spans = traces * 4;
console.log(
  JSON.stringify({
    case: mode,
    spans,
    cpuMsPerSpan: +((cpu.user + cpu.system) / 1000 / spans).toFixed(3),
    spansPerSec: Math.round(spans / (wall / 1000)),
    emitSec: +((emitted - t0) / 1000).toFixed(1),
    peakRssMB: Math.round(Math.max(peak, process.resourceUsage().maxRSS * 1024) / 1048576),
    // Flat memory: what the second half of the emitting loop added.
    rssSecondHalfMB: Math.round((rssEnd - rssHalf) / 1048576),
    ...(kafka ? { kafka: (({ emitted, acked, dropped, droppedBy }) => ({ emitted, acked, dropped, droppedBy }))(kafka.stats()) } : {}),
  }),
);
await observability.shutdown();
if (dir) rmSync(dir, { recursive: true, force: true });
process.exit(0);
