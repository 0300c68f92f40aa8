package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spanpipe/spanpipe/internal/app"
	"github.com/spanpipe/spanpipe/internal/kafkasec"
	"github.com/twmb/franz-go/pkg/kgo"
)

// preflightTimeout bounds the one connection a command makes to check its security
// settings; a broker that does not answer within it is left to the clients' retries.
const preflightTimeout = 10 * time.Second

// kafkaSecurityOpts returns the franz-go options of sec, after checking them against
// the brokers once: a rejected password or an untrusted certificate is a startup error
// (exit 1 within seconds), not a client that retries forever in the background.
func kafkaSecurityOpts(ctx context.Context, sec kafkasec.Config, brokers []string) ([]kgo.Opt, error) {
	opts, err := sec.Opts()
	if err != nil {
		return nil, exitError{2, fmt.Errorf("kafka: %w", err)}
	}
	if !sec.Enabled() {
		return opts, nil
	}
	if err := kafkasec.Preflight(ctx, preflightTimeout, append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...); err != nil {
		return nil, exitError{1, err}
	}
	return opts, nil
}

// envKafkaSecurityOpts is kafkaSecurityOpts for the commands configured by flags
// (produce, alert, drops, replay): their kafka.tls and kafka.sasl come from the
// kafka: block of the file in SPANPIPE_CONFIG and from SPANPIPE_KAFKA_TLS_* /
// SPANPIPE_KAFKA_SASL_* variables, the same keys `spanpipe consume` reads.
func envKafkaSecurityOpts(ctx context.Context, brokers []string) ([]kgo.Opt, error) {
	cfg, err := app.Load(os.Getenv("SPANPIPE_CONFIG"), os.Environ())
	if err != nil {
		return nil, exitError{2, app.ConfigError(err)}
	}
	if err := cfg.Kafka.Security.Validate("kafka."); err != nil {
		return nil, exitError{2, fmt.Errorf("invalid kafka security settings: %w", err)}
	}
	return kafkaSecurityOpts(ctx, cfg.Kafka.Security, brokers)
}
