// Compiled (never run) by `npm run typecheck`: the README's configuration type-checks
// against the pinned Mastra packages, and the exporter satisfies Mastra's interface.
import type { ObservabilityExporter } from '@mastra/core/observability';
import { Observability } from '@mastra/observability';

import { KafkaExporter } from '@spanpipe/mastra';
import type { KafkaDropEvent, KafkaExporterConfig } from '@spanpipe/mastra';

const config: KafkaExporterConfig = {
  brokers: ['kafka-1:9092', 'kafka-2:9092'],
  topic: 'spanpipe.spans',
  dropTopic: 'spanpipe.drops',
  ssl: true,
  sasl: { mechanism: 'scram-sha-512', username: 'app', password: 'secret' },
  compression: 'gzip',
  maxBufferSize: 10000,
  deliveryTimeoutMs: 30000,
};
const exporter: ObservabilityExporter = new KafkaExporter(config);

export const observability = new Observability({
  configs: { default: { serviceName: 'my-agent', exporters: [exporter] } },
});

export const reason: KafkaDropEvent['reason'] = 'producer-buffer-full';
