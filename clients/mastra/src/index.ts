export { KafkaExporter } from './exporter.js';
export type { KafkaDropEvent, KafkaDropReason, KafkaExporterConfig, KafkaExporterStats } from './exporter.js';
export { KafkaJSTransport } from './kafkajs.js';
export type { KafkaJSTransportOptions } from './kafkajs.js';
export type { OutRecord, Transport } from './transport.js';
