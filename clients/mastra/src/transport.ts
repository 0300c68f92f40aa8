/** One Kafka record as the exporter hands it to a transport. */
export interface OutRecord {
  topic: string;
  key: string | null;
  value: string;
  headers: Record<string, string>;
}

/**
 * What the exporter needs from a Kafka client. The default is kafkajs (see kafkajs.ts);
 * tests and benchmarks pass their own.
 *
 * send() resolves once every record is acknowledged by all in-sync replicas, and rejects
 * when any was not: the exporter then resends the same records (an idempotent producer
 * drops what the broker already has) until their deadline, and calls reset() before
 * moving on from records it gave up on, so that a new producer session starts.
 */
export interface Transport {
  connect(): Promise<void>;
  send(records: OutRecord[]): Promise<void>;
  reset(): Promise<void>;
  disconnect(): Promise<void>;
}
