package dropalerts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	// kafkaDefaultMaxMessageBytes is Kafka's default message.max.bytes, assumed when
	// the cluster does not let us read the real limit.
	kafkaDefaultMaxMessageBytes = 1048588
	// BatchOverhead is kept free of records in every write: the v2 batch header (61
	// bytes) and slack for the per-record estimate of [RecordSize].
	BatchOverhead = 1024
	// minTopicBytes is the smallest limit the publisher works with: below it a drop
	// event with its error text may not fit.
	minTopicBytes = 4096
)

// limits is what the topics accept.
type limits struct {
	// bytes is the smallest max.message.bytes of the drop and dead-letter topics.
	bytes int
}

// batchBudget is how many record bytes one write may carry.
func (l *limits) batchBudget() int { return l.bytes - BatchOverhead }

// readLimits creates missing topics (when configured) and reads their limits.
func readLimits(ctx context.Context, cl *kgo.Client, cfg *Config, log *slog.Logger) (*limits, error) {
	topics := []string{cfg.Topic}
	if dl := cfg.deadLetterTopic(); dl != cfg.Topic {
		topics = append(topics, dl)
	}
	adm := kadm.NewClient(cl)
	if cfg.CreateTopics {
		if err := createMissing(ctx, adm, cfg, topics, log); err != nil {
			return nil, err
		}
	}
	n, err := MaxMessageBytes(ctx, adm, topics...)
	if err != nil {
		return nil, err
	}
	if n < minTopicBytes {
		return nil, fmt.Errorf("dropalerts: %v accept at most %d bytes per batch, below the %d the publisher needs: %w", topics, n, minTopicBytes, ErrPermanent)
	}
	log.Info("drop topics ready", "topics", topics, "max_message_bytes", n)
	return &limits{bytes: n}, nil
}

// MaxMessageBytes returns the smallest max.message.bytes of topics: the largest
// (compressed) batch all of them accept. A topic that does not exist yet (it will
// be auto-created with the broker's defaults), or whose configs this principal may
// not describe, counts with the broker's message.max.bytes; when that cannot be read
// either, Kafka's default (1048588) is assumed. Replay bounds its writes to source
// topics with it, the publisher its writes to the drop topics.
func MaxMessageBytes(ctx context.Context, adm *kadm.Client, topics ...string) (int, error) {
	rcs, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil && !errors.Is(err, kerr.TopicAuthorizationFailed) && !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		return 0, fmt.Errorf("dropalerts: describe configs of %v: %w", topics, err)
	}
	limit, fallback := 0, false
	for _, t := range topics {
		v, ok := configValue(rcs, t, "max.message.bytes")
		n, perr := strconv.Atoi(v)
		if !ok || perr != nil || n <= 0 {
			fallback = true
			continue
		}
		limit = minPositive(limit, n)
	}
	if fallback || limit == 0 {
		limit = minPositive(limit, brokerMaxMessageBytes(ctx, adm))
	}
	return limit, nil
}

func brokerMaxMessageBytes(ctx context.Context, adm *kadm.Client) int {
	rcs, err := adm.DescribeBrokerConfigs(ctx)
	if err == nil {
		for _, rc := range rcs {
			for _, c := range rc.Configs {
				if c.Key == "message.max.bytes" && c.Value != nil {
					if n, err := strconv.Atoi(*c.Value); err == nil && n > 0 {
						return n
					}
				}
			}
		}
	}
	return kafkaDefaultMaxMessageBytes
}

func configValue(rcs kadm.ResourceConfigs, topic, key string) (string, bool) {
	for _, rc := range rcs {
		if rc.Name != topic || rc.Err != nil {
			continue
		}
		for _, c := range rc.Configs {
			if c.Key == key && c.Value != nil {
				return *c.Value, true
			}
		}
	}
	return "", false
}

func minPositive(a, b int) int {
	if a <= 0 {
		return b
	}
	return min(a, b)
}

// TopicConfigs are the configs the publisher creates its topics with.
func (c Config) TopicConfigs() map[string]*string {
	compression := c.Compression
	if compression == "none" {
		compression = "uncompressed"
	}
	return map[string]*string{
		"max.message.bytes": kadm.StringPtr(strconv.Itoa(c.MaxMessageBytes)),
		"retention.ms":      kadm.StringPtr(strconv.FormatInt(c.Retention.Milliseconds(), 10)),
		// The broker then stores what any writer sends (the producer's own drop
		// events included) in the one codec the readers were chosen for.
		"compression.type": kadm.StringPtr(compression),
	}
}

// createMissing creates those of topics that do not exist. A topic created
// meanwhile by someone else is fine; not being allowed to create is reported.
func createMissing(ctx context.Context, adm *kadm.Client, cfg *Config, topics []string, log *slog.Logger) error {
	details, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		return fmt.Errorf("dropalerts: list topics %v: %w", topics, err)
	}
	for _, t := range topics {
		if d, ok := details[t]; ok && d.Err == nil {
			continue
		}
		resp, err := adm.CreateTopic(ctx, cfg.Partitions, cfg.ReplicationFactor, cfg.TopicConfigs(), t)
		if err == nil {
			err = resp.Err
		}
		switch {
		case err == nil:
			log.Info("created drop topic", "topic", t, "partitions", cfg.Partitions, "replication_factor", cfg.ReplicationFactor,
				"max_message_bytes", cfg.MaxMessageBytes, "retention", cfg.Retention, "compression", cfg.Compression)
		case errors.Is(err, kerr.TopicAlreadyExists):
		case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed):
			// Someone else may create it (or the broker auto-creates it): its limit
			// is read below either way.
			log.Warn("not allowed to create the drop topic; set drops.create_topics: false or create it", "topic", t, "err", err)
		default:
			return fmt.Errorf("dropalerts: create topic %s: %w", t, err)
		}
	}
	return nil
}
