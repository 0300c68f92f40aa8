// Compares Kafka clients for the exporter, through the exporter itself: N realistic
// Mastra span events (span_ended, ~1 KB of JSON) go through KafkaExporter.onTracingEvent
// and flush() with each client as its transport: acks=all, idempotent producer, one
// request in flight. Reports process CPU per event (the app's cost: the Kafka client
// runs in the app's process) and events/s.
//
//   BROKERS=127.0.0.1:9092 TOPIC=bench EXTRA_MODULES=/dir/node_modules node bench/clients.mjs
//
// kafkajs is the package's dependency; @platformatic/kafka is loaded from EXTRA_MODULES
// when present (install it there: npm install @platformatic/kafka). The topic must exist.
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { KafkaExporter, KafkaJSTransport } from '../dist/esm/index.js';

const brokers = (process.env.BROKERS ?? '127.0.0.1:9092').split(',');
const topic = process.env.TOPIC ?? 'bench';
const n = Number(process.env.EVENTS ?? 100000);
const rounds = Number(process.env.ROUNDS ?? 3);

function platformaticTransport(dir) {
  const { Producer, stringSerializers } = createRequire(join(dir, 'x.js'))('@platformatic/kafka');
  const producer = new Producer({ clientId: 'bench', bootstrapBrokers: brokers, serializers: stringSerializers, idempotent: true, acks: -1, autocreateTopics: false, retries: 2 });
  return {
    async connect() {},
    async send(records) {
      await producer.send({ messages: records.map((r) => ({ topic: r.topic, key: r.key ?? undefined, value: r.value, headers: r.headers })) });
    },
    async reset() {},
    async disconnect() {
      await producer.close();
    },
  };
}

const hex = (len) => Array.from({ length: len }, () => ((Math.random() * 16) | 0).toString(16)).join('');
function event(i) {
  const traceId = hex(32);
  return {
    type: 'span_ended',
    exportedSpan: {
      id: hex(16), traceId, parentSpanId: hex(16), name: 'llm', type: 'model_generation',
      attributes: { model: 'gpt-4o-mini', provider: 'openai', usage: { inputTokens: 812, outputTokens: 96 }, finishReason: 'stop' },
      metadata: { userId: `user-${i % 100}`, threadId: `thread-${i % 1000}` },
      startTime: new Date(), endTime: new Date(),
      input: { messages: [{ role: 'user', content: 'Where is my order #' + i + '? It was due last week and the tracking page shows nothing.' }] },
      output: { text: 'I looked it up: order #' + i + ' left the warehouse yesterday and should arrive within two days. '.repeat(4) },
      isEvent: false, isRootSpan: false,
    },
  };
}

async function run(name, transport) {
  const exporter = new KafkaExporter({ brokers, topic, dropTopic: topic, transport, maxBufferSize: n + 1, maxBatchWaitMs: 5 });
  // Warm up: connection, metadata, producer id, JIT.
  for (let i = 0; i < 2000; i++) exporter.onTracingEvent(event(i));
  await exporter.flush();
  const events = Array.from({ length: n }, (_, i) => event(i)); // built outside the measurement
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (const ev of events) exporter.onTracingEvent(ev);
  const emitted = performance.now();
  await exporter.flush();
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const s = exporter.stats();
  await exporter.shutdown();
  if (s.dropped !== 0 || s.acked !== n + 2000) throw new Error(`${name}: ${JSON.stringify(s)}`);
  const bytes = JSON.stringify(events[0]).length;
  return { client: name, events: n, eventBytes: bytes, cpuUsPerEvent: +((cpu.user + cpu.system) / n).toFixed(1), hookUsPerEvent: +(((emitted - t0) * 1000) / n).toFixed(2), eventsPerSec: Math.round(n / (wall / 1000)) };
}

const clients = [['kafkajs', () => new KafkaJSTransport({ brokers, clientId: 'bench', compression: 'none', connectionTimeoutMs: 3000, requestTimeoutMs: 30000, log: () => {} })]];
if (process.env.EXTRA_MODULES) clients.push(['@platformatic/kafka', () => platformaticTransport(process.env.EXTRA_MODULES)]);
for (let r = 0; r < rounds; r++) {
  for (const [name, make] of clients) console.log(JSON.stringify(await run(name, make())));
}
