// The swaps in kafkajs' produce path (src/produce.cts) must give exactly what kafkajs' own
// code gives: the same request bytes, the same grouping; what the produce encoder does
// not cover goes to kafkajs' own encoder.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';

import { KafkaJSTransport } from '../dist/esm/kafkajs.js';
import { crc32c, fastRequest, frameRequest, groupMessagesPerPartition } from '../dist/esm/produce.cjs';

const require = createRequire(import.meta.url);
// kafkajs' own modules: loading the exporter swapped them in the module cache, so load
// fresh copies to compare with.
function kafkajsOwn(name) {
  const path = require.resolve(`kafkajs/src/${name}.js`);
  const swapped = require.cache[path];
  delete require.cache[path];
  try {
    return require(path);
  } finally {
    require.cache[path] = swapped;
  }
}
const original = kafkajsOwn('protocol/requests/produce/v3/request');
const originalFraming = kafkajsOwn('protocol/request');
const originalGrouping = kafkajsOwn('producer/groupMessagesPerPartition');
const Long = require('kafkajs/src/utils/long');
const kafkajsCrc32c = require('kafkajs/src/protocol/recordBatch/crc32C/index.js');
const { Types } = require('kafkajs/src/protocol/message/compression');
const FAST = Symbol.for('spanpipe.fastProduce');

const traceId = (i) => i.toString(16).padStart(32, '0');
const args = (topicData, extra = {}) => ({ acks: -1, timeout: 5000, producerId: Long.fromInt(4711), producerEpoch: 2, topicData, ...extra });
const part = (partition, messages, firstSequence = 0) => ({ partition, firstSequence, messages });
const codec = { 'spanpipe-codec': 'json' };

const encoded = (fn, a) => fn(a).encode().then((e) => Buffer.from(e.buffer));

async function sameBytes(a) {
  const realNow = Date.now;
  Date.now = () => 1764547200123; // both encoders stamp the batch with Date.now()
  try {
    const framed = (framing, request) => framing({ correlationId: 77, clientId: 'spanpipe-mastra', request }).then((e) => Buffer.from(e.buffer));
    const theirs = await framed(originalFraming, original(a));
    const ours = await framed(frameRequest(), fastRequest(original)(a));
    // The produce encoder alone, and with kafkajs' own framing.
    assert.ok((await encoded(fastRequest(original), a)).equals(await encoded(original, a)), 'produce body differs');
    assert.ok((await framed(originalFraming, fastRequest(original)(a))).equals(theirs), 'request differs with kafkajs framing');
    return [theirs, ours];
  } finally {
    Date.now = realNow;
  }
}

const fastCases = [
  ['exporter records', args([{ topic: 'spanpipe.spans', partitions: [part(0, Array.from({ length: 300 }, (_, i) => ({ key: traceId(i), value: JSON.stringify({ type: 'span_ended', i }), headers: codec })), 17)] }])],
  [
    'records and drop events, several topics and partitions',
    args([
      { topic: 'spanpipe.spans', partitions: [part(2, [{ key: traceId(1), value: '{}', headers: codec }]), part(0, [{ key: null, value: '{"a":1}', headers: codec }])] },
      { topic: 'spanpipe.drops', partitions: [part(1, [{ key: 'producer-buffer-full', value: '{"type":"drop"}', headers: { 'spanpipe-kind': 'drop-event', 'spanpipe-drop-reason': 'producer-buffer-full' } }])] },
    ]),
  ],
  ['multi-byte text and a lone surrogate', args([{ topic: 't', partitions: [part(0, [{ key: 'é文字', value: 'cut emoji \ud83d', headers: { ключ: 'значение 😀' } }])] }])],
  ['Buffer keys, values and headers; null and empty values; no headers', args([{ topic: 't', partitions: [part(0, [{ key: Buffer.from([0, 255]), value: Buffer.alloc(0), headers: { b: Buffer.from('x') } }, { key: undefined, value: null }, { key: '', value: '', headers: {} }])] }])],
  ['values whose lengths take 1, 2 and 3 varint bytes', args([{ topic: 't', partitions: [part(0, [63, 64, 8191, 8192, 200000].map((n) => ({ key: 'k', value: 'v'.repeat(n), headers: codec })))] }])],
  ['transactional, 64-bit producer id', args([{ topic: 't', partitions: [part(0, [{ key: 'k', value: 'v' }], 2147483647)] }], { transactionalId: 'tx-1', producerId: Long.fromValue('9007199254740993') })],
  ['not idempotent', { acks: 1, timeout: 30000, topicData: [{ topic: 't', partitions: [part(0, [{ key: 'k', value: 'v' }])] }] }],
];

for (const [name, a] of fastCases) {
  test(`fast produce encoder writes kafkajs' bytes: ${name}`, async () => {
    assert.equal(fastRequest(original)(a)[FAST], true, 'the fast path must apply');
    const [theirs, ours] = await sameBytes(a);
    assert.equal(ours.length, theirs.length);
    assert.ok(ours.equals(theirs), `first difference at byte ${ours.findIndex((b, i) => b !== theirs[i])}`);
  });
}

// What the fast path does not cover goes to kafkajs as it is (it would write these differently).
const kafkajsCases = [
  ['compression', args([{ topic: 't', partitions: [part(0, [{ key: 'k', value: 'v'.repeat(1000) }])] }], { compression: Types.GZIP })],
  ['message timestamps', args([{ topic: 't', partitions: [part(0, [{ key: 'k', value: 'v', timestamp: '1700000000000' }, { key: 'k', value: 'w', timestamp: '1700000000500' }])] }])],
  ['header value lists', args([{ topic: 't', partitions: [part(0, [{ key: 'k', value: 'v', headers: { h: ['a', 'b'] } }])] }])],
];

for (const [name, a] of kafkajsCases) {
  test(`kafkajs encodes what the fast path does not cover: ${name}`, async () => {
    assert.equal(fastRequest(original)(a)[FAST], undefined);
    if (a.compression) return; // gzip output is not byte-stable across calls
    const [theirs, ours] = await sameBytes(a);
    assert.ok(ours.equals(theirs));
  });
}

test('groupMessagesPerPartition groups as kafkajs does', () => {
  const partitionMetadata = [0, 1, 2, 3].map((partitionId) => ({ partitionId, leader: 1 }));
  const messages = Array.from({ length: 500 }, (_, i) => ({ key: traceId(i * 7919), value: String(i) }));
  const partitioner = ({ message }) => Number(message.value) % 3 === 0 ? 3 : Number(message.value) % 2;
  for (const args of [{ topic: 't', partitionMetadata, messages, partitioner }, { topic: 't', partitionMetadata: [], messages, partitioner }, { topic: 't', partitionMetadata, messages: [], partitioner }]) {
    const ours = groupMessagesPerPartition(args);
    const theirs = originalGrouping(args);
    assert.deepEqual(ours, theirs);
    assert.deepEqual(Object.keys(ours), Object.keys(theirs));
  }
});

test('frameRequest frames as kafkajs does, with or without client id', async () => {
  const Encoder = require('kafkajs/src/protocol/encoder.js');
  const encode = async () => new Encoder().writeString('payload é').writeInt32(-1);
  for (const clientId of ['spanpipe-mastra', 'é', '', null]) {
    const r = { correlationId: 2147483647, clientId, request: { apiKey: 0, apiVersion: 7, encode } };
    assert.ok(Buffer.from((await frameRequest()(r)).buffer).equals(Buffer.from((await originalFraming(r)).buffer)), `clientId ${clientId}`);
  }
});

test('crc32c matches kafkajs at every alignment and length', () => {
  const data = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 131 + 7) & 255));
  for (let start = 0; start < 9; start++) {
    for (let end = start; end <= data.length; end += 13) {
      assert.equal(crc32c(data, start, end), kafkajsCrc32c(data.subarray(start, end)), `[${start}, ${end})`);
    }
  }
});

test('loading the exporter swaps the fast steps into kafkajs, for every produce version kafkajs picks', () => {
  const logged = [];
  new KafkaJSTransport({ brokers: ['127.0.0.1:1'], clientId: 't', compression: 'none', connectionTimeoutMs: 100, requestTimeoutMs: 100, log: (m) => logged.push(m) });
  assert.deepEqual(logged.filter((m) => m.includes('slower')), []);
  assert.equal(require('kafkajs/src/producer/groupMessagesPerPartition.js')[FAST], true);
  assert.equal(require('kafkajs/src/protocol/request.js')[FAST], true);
  const produce = require('kafkajs/src/protocol/requests/produce/index.js');
  for (const version of [3, 4, 5, 6, 7]) {
    const { request } = produce.protocol({ version })(args([{ topic: 't', partitions: [part(0, [{ key: 'k', value: 'v', headers: codec }])] }]));
    assert.equal(request[FAST], true, `produce v${version}`);
  }
});

test('SPANPIPE_KAFKAJS_SWAPS=off leaves kafkajs untouched', async () => {
  const { execFileSync } = await import('node:child_process');
  const probe = `
    const { loadKafkaJS } = require(${JSON.stringify(require.resolve('../dist/cjs/produce.cjs'))});
    const { fast } = loadKafkaJS();
    const FAST = Symbol.for('spanpipe.fastProduce');
    const swapped = ['producer/groupMessagesPerPartition', 'protocol/request', 'protocol/requests/produce/v3/request']
      .filter((p) => require(require.resolve('kafkajs/src/' + p + '.js', { paths: [${JSON.stringify(require.resolve('kafkajs'))}] }))[FAST]);
    process.stdout.write(JSON.stringify({ fast, swapped }));`;
  const run = (env) => JSON.parse(execFileSync(process.execPath, ['-e', probe], { env: { ...process.env, ...env } }).toString());
  assert.deepEqual(run({ SPANPIPE_KAFKAJS_SWAPS: 'off' }), { fast: false, swapped: [] });
  assert.equal(run({ SPANPIPE_KAFKAJS_SWAPS: '' }).swapped.length, 3);
});
