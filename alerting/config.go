package alerting

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"time"

	"github.com/spanpipe/spanpipe/dropalerts"
)

// Config configures an [Alerter]. Start from [DefaultConfig]; the Kafka
// seed brokers, TLS and SASL come as kgo options, as for [New].
type Config struct {
	// Topic is the drop topic to read. Default "spanpipe.drops". Dead letters on the
	// same topic are skipped (told apart by the spanpipe-kind header).
	Topic string `yaml:"topic"`
	// Group is the alerter's consumer group. Default "spanpipe-alert". Several
	// alerters in one group share the partitions; each then sends the alerts for what
	// it reads, and Alertmanager merges alerts with equal labels.
	Group string `yaml:"group"`
	// StartFromEnd makes a group without committed offsets start at the end of the
	// topic. Default false: a new alerter reports every drop still in the topic once
	// (aggregated, one alert per key), instead of missing the ones before it started.
	StartFromEnd bool `yaml:"start_from_end"`

	// AlertmanagerURLs are the base URLs of the Alertmanagers of one cluster
	// (http://host:9093, or with the route prefix). Alerts are posted to
	// <url>/api/v2/alerts of each; a post counts as delivered when at least one of
	// them accepted it, as Prometheus does, because the cluster gossips. Empty: no
	// Alertmanager.
	AlertmanagerURLs []string `yaml:"alertmanager_urls"`
	// WebhookURL receives the same alerts as JSON in Alertmanager's webhook format
	// (version "4", with a "spanpipe" object of details per alert), on changes only:
	// no periodic re-posts. Empty: no webhook. At least one receiver is required.
	WebhookURL string `yaml:"webhook_url"`

	// Window is how far back drops are counted against a threshold, measured on the
	// alerter's clock when each drop event is read (so drops read late, after an
	// outage, still count). Default 1m.
	Window time.Duration `yaml:"window"`
	// Quiet resolves an alert after this long without a new drop event for its key:
	// the alerter then posts it with endsAt = now. Default 5m.
	Quiet time.Duration `yaml:"quiet"`
	// DefaultThreshold is the number of dropped records within Window that opens an
	// alert, for reasons without an entry in Thresholds. Default 1: any drop alerts.
	DefaultThreshold int `yaml:"default_threshold"`
	// Thresholds overrides DefaultThreshold per reason (for example
	// "producer-buffer-full: 1000"). Keys must be known reasons.
	Thresholds map[dropalerts.Reason]int `yaml:"thresholds"`
	// DefaultSeverity is the severity label of alerts. Default "warning".
	DefaultSeverity string `yaml:"default_severity"`
	// Severities overrides DefaultSeverity per reason. Keys must be known reasons.
	Severities map[dropalerts.Reason]string `yaml:"severities"`
	// ExternalLabels are added to every alert (cluster, environment). They may not
	// replace alertname, reason, signal, sink, component or severity.
	ExternalLabels map[string]string `yaml:"external_labels"`
	// GeneratorURL, when set, is each alert's generatorURL (a dashboard, a runbook).
	GeneratorURL string `yaml:"generator_url"`
	// MaxAlerts bounds the number of distinct keys tracked at once; drop events for
	// further keys are counted under one key whose signal, sink and component are
	// "other". Default 500.
	MaxAlerts int `yaml:"max_alerts"`

	// EvalInterval is how often windows, thresholds and quiet periods are evaluated
	// and due notifications sent. Default 1s.
	EvalInterval time.Duration `yaml:"eval_interval"`
	// ResendInterval re-posts open alerts to Alertmanager so that they stay active:
	// each post sets endsAt to now + 4 × ResendInterval (as Prometheus does), so if
	// the alerter dies its alerts resolve by themselves. Default 1m.
	ResendInterval time.Duration `yaml:"resend_interval"`
	// MinSendInterval rate-limits notifications: at most one post per receiver per
	// MinSendInterval, however many drops arrive; changes in between are merged into
	// the next post. Retries after a failure follow the backoff instead. Default 10s;
	// zero disables the limit.
	MinSendInterval time.Duration `yaml:"min_send_interval"`
	// RequestTimeout bounds one HTTP post. Default 10s.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// RetryInitialInterval and RetryMaxInterval bound the jittered exponential backoff
	// between failed posts to one receiver. Retries never stop; a Retry-After header
	// is honoured. Defaults 1s and 1m.
	RetryInitialInterval time.Duration `yaml:"retry_initial_interval"`
	RetryMaxInterval     time.Duration `yaml:"retry_max_interval"`

	// MaxPendingEvents bounds drop events read but not yet handled (delivered, or
	// expired below their threshold). Beyond it the alerter pauses fetching until
	// receivers catch up; Kafka keeps the rest. Default 100000.
	MaxPendingEvents int `yaml:"max_pending_events"`
	// ShutdownTimeout bounds the last delivery attempt and commit at shutdown. What is
	// not delivered by then stays uncommitted and is read again. Default 10s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// DefaultConfig returns the defaults (no receivers).
func DefaultConfig() Config {
	return Config{
		Topic:                "spanpipe.drops",
		Group:                "spanpipe-alert",
		Window:               time.Minute,
		Quiet:                5 * time.Minute,
		DefaultThreshold:     1,
		DefaultSeverity:      "warning",
		MaxAlerts:            500,
		EvalInterval:         time.Second,
		ResendInterval:       time.Minute,
		MinSendInterval:      10 * time.Second,
		RequestTimeout:       10 * time.Second,
		RetryInitialInterval: time.Second,
		RetryMaxInterval:     time.Minute,
		MaxPendingEvents:     100000,
		ShutdownTimeout:      10 * time.Second,
	}
}

var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// reservedLabels are set by the alerter on every alert.
var reservedLabels = []string{"alertname", "reason", "signal", "sink", "component", "severity"}

// Validate reports every problem, each naming its key.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !dropalerts.ValidTopicName(c.Topic) {
		bad("alert.topic must be a Kafka topic name ([a-zA-Z0-9._-], at most 249), got %q", c.Topic)
	}
	if c.Group == "" {
		bad("alert.group must not be empty")
	}
	if len(c.AlertmanagerURLs) == 0 && c.WebhookURL == "" {
		bad("alert.alertmanager_urls or alert.webhook_url must be set")
	}
	for i, u := range c.AlertmanagerURLs {
		if err := checkHTTPURL(u); err != nil {
			bad("alert.alertmanager_urls[%d]: %w", i, err)
		}
	}
	if c.WebhookURL != "" {
		if err := checkHTTPURL(c.WebhookURL); err != nil {
			bad("alert.webhook_url: %w", err)
		}
	}
	if c.GeneratorURL != "" {
		if u, err := url.Parse(c.GeneratorURL); err != nil || !u.IsAbs() {
			bad("alert.generator_url must be an absolute URL, got %q", c.GeneratorURL)
		}
	}
	positive := func(key string, d time.Duration) {
		if d <= 0 {
			bad("alert.%s must be > 0, got %s", key, d)
		}
	}
	positive("window", c.Window)
	positive("quiet", c.Quiet)
	positive("eval_interval", c.EvalInterval)
	positive("resend_interval", c.ResendInterval)
	positive("request_timeout", c.RequestTimeout)
	positive("retry_initial_interval", c.RetryInitialInterval)
	positive("shutdown_timeout", c.ShutdownTimeout)
	if c.RetryMaxInterval < c.RetryInitialInterval {
		bad("alert.retry_max_interval must be >= alert.retry_initial_interval, got %s < %s", c.RetryMaxInterval, c.RetryInitialInterval)
	}
	if c.MinSendInterval < 0 {
		bad("alert.min_send_interval must be >= 0, got %s", c.MinSendInterval)
	}
	if c.DefaultThreshold < 1 {
		bad("alert.default_threshold must be >= 1, got %d", c.DefaultThreshold)
	}
	for r, n := range c.Thresholds {
		if !slices.Contains(dropalerts.AllReasons, r) {
			bad("alert.thresholds: unknown reason %q (known: %v)", r, dropalerts.AllReasons)
		} else if n < 1 {
			bad("alert.thresholds.%s must be >= 1, got %d", r, n)
		}
	}
	if c.DefaultSeverity == "" {
		bad("alert.default_severity must not be empty")
	}
	for r, s := range c.Severities {
		if !slices.Contains(dropalerts.AllReasons, r) {
			bad("alert.severities: unknown reason %q (known: %v)", r, dropalerts.AllReasons)
		} else if s == "" {
			bad("alert.severities.%s must not be empty", r)
		}
	}
	for k := range c.ExternalLabels {
		if !labelNameRE.MatchString(k) {
			bad("alert.external_labels: %q is not a valid label name", k)
		} else if slices.Contains(reservedLabels, k) {
			bad("alert.external_labels: %q is set by the alerter", k)
		}
	}
	if c.MaxAlerts < 1 {
		bad("alert.max_alerts must be >= 1, got %d", c.MaxAlerts)
	}
	if c.MaxPendingEvents < 1 {
		bad("alert.max_pending_events must be >= 1, got %d", c.MaxPendingEvents)
	}
	return errors.Join(errs...)
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("invalid URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("must be an http or https URL, got %q", u.Redacted())
	}
	if u.Host == "" {
		return fmt.Errorf("has no host: %q", u.Redacted())
	}
	return nil
}

func (c Config) threshold(r dropalerts.Reason) int64 {
	if n, ok := c.Thresholds[r]; ok {
		return int64(n)
	}
	return int64(c.DefaultThreshold)
}

func (c Config) severity(r dropalerts.Reason) string {
	if s, ok := c.Severities[r]; ok {
		return s
	}
	return c.DefaultSeverity
}
