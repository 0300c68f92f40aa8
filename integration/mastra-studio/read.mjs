// Asks @mastra/clickhouse's observability store (the reads Mastra Studio makes) about
// database DB and prints the answers as one JSON object, keyed by call, on stdout.
// integration/mastra_studio_test.go runs it on the database Mastra's own exporter
// filled and on the one `spanpipe consume` (layout mastra) filled, and compares.
//
// Environment: CH_URL (HTTP), DB, and INIT=1 to run the store's init() first (it
// creates Mastra's tables and views; idempotent, as when a Mastra server starts).
import { ClickhouseStoreVNext } from '@mastra/clickhouse';

const store = new ClickhouseStoreVNext({ id: 'studio-read', url: process.env.CH_URL, username: 'default', password: '', database: process.env.DB });
await store.init();
if (process.env.INIT === '1') {
  process.stdout.write('{}\n', () => process.exit(0));
}
const o = await store.getStore('observability');

const all = { pagination: { page: 0, perPage: 100 } };
const out = {};
const call = async (name, fn) => {
  try {
    out[name] = await fn();
  } catch (err) {
    out[name] = { error: String(err?.message ?? err) };
  }
};

const traceFilters = {
  all: {},
  entityName: { entityName: 'support' },
  entityType: { entityType: 'agent' },
  hasChildError: { hasChildError: true },
  noChildError: { hasChildError: false },
  tags: { tags: ['t1'] },
  metadata: { metadata: { region: 'r1' } },
  userId: { userId: 'user-1' },
  threadId: { threadId: 'thread-3' },
  resourceId: { resourceId: 'res-0' },
  environment: { environment: 'staging' },
  serviceName: { serviceName: 'studio-proof' },
  statusError: { status: 'error' },
  statusSuccess: { status: 'success' },
  statusRunning: { status: 'running' },
};
for (const [k, filters] of Object.entries(traceFilters)) {
  await call(`listTraces.${k}`, () => o.listTraces({ filters, ...all, orderBy: { field: 'startedAt', direction: 'ASC' } }));
}
await call('listTracesLight.all', () => o.listTracesLight({ ...all, orderBy: { field: 'startedAt', direction: 'ASC' } }));
// The workload's shapes repeat every 6 traces (i % 2, % 3); the first 6 cover them.
const roots = (out['listTraces.all']?.spans ?? []).slice(0, 6);
for (const r of roots) {
  await call(`getTrace.${r.name}`, () => o.getTrace({ traceId: r.traceId }));
  await call(`getTraceLight.${r.name}`, () => o.getTraceLight({ traceId: r.traceId }));
  await call(`getRootSpan.${r.name}`, () => o.getRootSpan({ traceId: r.traceId }));
}
await call('listBranches', () => o.listBranches({ ...all, orderBy: { field: 'startedAt', direction: 'ASC' } }));
await call('listBranches.workflow', () => o.listBranches({ filters: { spanType: 'workflow_run' }, ...all }));

await call('listLogs', () => o.listLogs({ ...all, orderBy: { field: 'timestamp', direction: 'ASC' } }));
await call('listLogs.error', () => o.listLogs({ filters: { level: 'error' }, ...all, orderBy: { field: 'timestamp', direction: 'ASC' } }));
await call('listMetrics', () => o.listMetrics({ ...all, orderBy: { field: 'timestamp', direction: 'ASC' } }));
await call('listMetrics.latency', () => o.listMetrics({ filters: { name: ['proof_latency_ms'] }, ...all, orderBy: { field: 'timestamp', direction: 'ASC' } }));
for (const aggregation of ['sum', 'avg', 'count', 'max']) {
  await call(`getMetricAggregate.${aggregation}`, () => o.getMetricAggregate({ name: ['proof_latency_ms'], aggregation }));
}
await call('getMetricBreakdown', () => o.getMetricBreakdown({ name: ['proof_latency_ms'], aggregation: 'sum', groupBy: ['route'] }));
await call('getMetricNames', () => o.getMetricNames({}));
await call('listScores', () => o.listScores({ ...all, orderBy: { field: 'timestamp', direction: 'ASC' } }));
await call('getScoreAggregate', () => o.getScoreAggregate({ scorerId: 'relevance', aggregation: 'avg' }));
await call('listFeedback', () => o.listFeedback({ ...all, orderBy: { field: 'timestamp', direction: 'ASC' } }));
await call('getFeedbackAggregate', () => o.getFeedbackAggregate({ feedbackType: 'rating', aggregation: 'avg' }));

// Delta ("live") mode from the start of the stream: every row the delta tables list,
// once each. They come in ingest order, which is each writer's own, so they are
// sorted here; cursor values are per database (ingest time) and left out by the test.
const ingestOrderFree = (key) => async () => {
  const r = await o[`list${key[0].toUpperCase()}${key.slice(1)}`]({ mode: 'delta', after: '0', limit: 100 });
  const items = r[key === 'traces' ? 'spans' : key];
  const id = (x) => JSON.stringify({ ...x, cursorId: undefined });
  items.sort((a, b) => (id(a) < id(b) ? -1 : id(a) > id(b) ? 1 : 0));
  return r;
};
for (const key of ['traces', 'logs', 'metrics', 'scores', 'feedback']) await call(`delta.${key}`, ingestOrderFree(key));

// A pipe is written asynchronously: exit once the answers are out.
process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
