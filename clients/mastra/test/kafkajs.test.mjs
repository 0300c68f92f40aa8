// The kafkajs transport's partitioner must place every record where kafkajs' own
// DefaultPartitioner (the Java client's murmur2) does: records must not move partitions.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';

import { Partitioners } from 'kafkajs';

import { javaCompatiblePartitioner } from '../dist/esm/kafkajs.js';

test('javaCompatiblePartitioner places keyed records as kafkajs DefaultPartitioner does', () => {
  const ours = javaCompatiblePartitioner();
  const theirs = Partitioners.DefaultPartitioner();
  const keys = [
    '',
    'a',
    'ab',
    'abc',
    'abcd',
    '0af7651916cd43dd8448eb211c80319c',
    'é',
    '文字',
    'cut emoji \ud83d',
    '😀'.repeat(500),
    randomBytes(37),
  ];
  for (let i = 0; i < 3000; i++) keys.push(randomBytes(16).toString('hex'), randomBytes(i % 90).toString('latin1'), randomBytes(i % 40));
  for (const partitions of [1, 3, 7, 64]) {
    const partitionMetadata = Array.from({ length: partitions }, (_, id) => ({ partitionId: id, leader: 1 }));
    for (const key of keys) {
      const args = { topic: 't', partitionMetadata, message: { key, value: 'v' } };
      assert.equal(ours(args), theirs(args), `key ${JSON.stringify(String(key))}, ${partitions} partitions`);
    }
  }
});

test('javaCompatiblePartitioner keeps an explicit partition', () => {
  const partitionMetadata = [0, 1, 2].map((id) => ({ partitionId: id, leader: 1 }));
  assert.equal(javaCompatiblePartitioner()({ topic: 't', partitionMetadata, message: { key: 'k', value: 'v', partition: 2 } }), 2);
});
