// toJSON must give exactly JSON.stringify's text for every event, without changing the
// event (Mastra hands the same objects to every exporter).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Mastra } from '@mastra/core/mastra';
import { SpanType } from '@mastra/core/observability';
import { Observability } from '@mastra/observability';

import { toJSON } from '../dist/esm/exporter.js';

const bodyKey = { span_started: 'exportedSpan', span_updated: 'exportedSpan', span_ended: 'exportedSpan', log: 'log', metric: 'metric', score: 'score', feedback: 'feedback' };

function same(event, body) {
  const before = JSON.stringify(event);
  const dates = Object.values(event?.[body] ?? {}).filter((v) => v instanceof Date);
  assert.equal(toJSON(event, body), before);
  assert.equal(JSON.stringify(event), before, 'the event was changed');
  for (const d of dates) assert.ok(Object.values(event[body]).includes(d), 'a Date was replaced in the event');
}

test("toJSON writes JSON.stringify's text for the events real Mastra emits", async () => {
  const events = [];
  const capture = (e) => events.push(e);
  const exporter = { name: 'capture', onTracingEvent: capture, onLogEvent: capture, onMetricEvent: capture, onScoreEvent: capture, onFeedbackEvent: capture, exportTracingEvent: async () => {}, flush: async () => {}, shutdown: async () => {} };
  const observability = new Observability({ configs: { default: { serviceName: 'svc', exporters: [exporter] } } });
  new Mastra({ observability, logger: false });
  const obs = observability.getDefaultInstance();
  const root = obs.startSpan({ type: SpanType.AGENT_RUN, name: 'agent', input: { q: 'é \ud83d', at: new Date(0) }, metadata: { userId: 'u1' } });
  const llm = root.createChildSpan({ type: SpanType.MODEL_GENERATION, name: 'llm', attributes: { model: 'gpt-4o-mini', provider: 'openai' } });
  llm.update({ attributes: { model: 'gpt-4o-mini', provider: 'openai', streaming: true } });
  llm.end({ output: { text: 'ok' }, attributes: { model: 'gpt-4o-mini', provider: 'openai', usage: { inputTokens: 800, outputTokens: 90 } } });
  root.createEventSpan?.({ type: SpanType.GENERIC, name: 'event', output: { n: 1 } });
  root.error({ error: new Error('boom') });
  await observability.flush();
  const types = new Set(events.map((e) => e.type));
  for (const t of ['span_started', 'span_updated', 'span_ended', 'metric']) assert.ok(types.has(t), `no ${t} event`);
  for (const e of events) same(e, bodyKey[e.type]);
});

const at = new Date('2026-01-02T03:04:05.678Z');
class Custom {
  constructor() {
    this.timestamp = at;
  }
}
class LaterDate extends Date {}
const withOwn = (d, key, value) => Object.assign(new Date(d), { [key]: value });

for (const [name, event, body] of [
  ['a span with start and end', { type: 'span_ended', exportedSpan: { id: 's', traceId: 't', startTime: at, endTime: new Date(at.getTime() + 5), input: { at } } }, 'exportedSpan'],
  ['an invalid Date', { type: 'metric', metric: { timestamp: new Date(NaN), value: 1 } }, 'metric'],
  ['undefined, functions and symbols beside Dates', { type: 'log', log: { a: undefined, timestamp: at, f() {}, s: Symbol('x'), [Symbol('k')]: 1, n: null } }, 'log'],
  ['a Date subclass', { type: 'score', score: { timestamp: new LaterDate(at) } }, 'score'],
  ['a Date with its own toJSON', { type: 'feedback', feedback: { timestamp: withOwn(at, 'toJSON', () => 'mine') } }, 'feedback'],
  ['a Date with its own valueOf', { type: 'feedback', feedback: { timestamp: withOwn(at, 'valueOf', () => NaN) } }, 'feedback'],
  ['a Date with its own toISOString', { type: 'feedback', feedback: { timestamp: withOwn(at, 'toISOString', () => 'iso') } }, 'feedback'],
  ['a body that is a class instance', { type: 'log', log: new Custom() }, 'log'],
  ['a body with toJSON', { type: 'log', log: { timestamp: at, toJSON: () => ({ replaced: true }) } }, 'log'],
  ['an event with toJSON', { type: 'log', log: { timestamp: at }, toJSON: () => 'x' }, 'log'],
  ['a null-prototype body', { type: 'metric', metric: Object.assign(Object.create(null), { timestamp: at, labels: {} }) }, 'metric'],
  ['keys after the body', { type: 'metric', metric: { timestamp: at }, extra: at }, 'metric'],
  ['no body', { type: 'metric' }, 'metric'],
  ['a body that is an array', { type: 'metric', metric: [at] }, 'metric'],
  ['not an object', 'text', 'metric'],
]) {
  test(`toJSON writes JSON.stringify's text: ${name}`, () => same(event, body));
}
