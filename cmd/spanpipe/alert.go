package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spanpipe/spanpipe/alerting"
	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/app"
	"github.com/twmb/franz-go/pkg/kgo"
)

const alertHelp = `usage: spanpipe alert --brokers HOST:PORT --alertmanager URL [--webhook URL] [flags]

Reads drop events from the drop topic (consumer group "spanpipe-alert") and posts one
alert per (reason, signal, sink, component) to Alertmanager's API v2 (alertname
SpanpipeDrops), and optionally to a webhook in Alertmanager's webhook format. An alert
opens when the dropped records within --window reach the reason's threshold, is
re-posted while it is active, and resolves after --quiet without a new drop.
Drop-topic offsets are committed only once the alerts that include them were
delivered: while Alertmanager is down the alerter retries, and after a restart it
reads the undelivered drop events again. Runs until SIGTERM or SIGINT.

flags:
`

func runAlert(ctx context.Context, args []string) error {
	def := alerting.DefaultConfig()
	fs := flag.NewFlagSet("alert", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), alertHelp); fs.PrintDefaults() }
	brokers := brokersFlag(fs)
	topic := fs.String("drop-topic", def.Topic, "drop topic (drops.topic)")
	aliasFlag(fs, "topic", "drop-topic")
	group := fs.String("group", def.Group, "consumer group")
	am := fs.String("alertmanager", os.Getenv("SPANPIPE_ALERTMANAGER_URL"), "Alertmanager base URL; several (one HA cluster) comma-separated (env SPANPIPE_ALERTMANAGER_URL)")
	webhook := fs.String("webhook", "", "also post alerts to this URL (Alertmanager webhook JSON)")
	window := fs.Duration("window", def.Window, "dropped records are counted against thresholds within this window")
	quiet := fs.Duration("quiet", def.Quiet, "resolve an alert after this long without a new drop")
	resend := fs.Duration("resend", def.ResendInterval, "re-post active alerts to Alertmanager this often (endsAt = now + 4x this)")
	minInterval := fs.Duration("min-interval", def.MinSendInterval, "at most one post per receiver per this interval (rate limit)")
	thresholds := kvFlag{}
	fs.Var(thresholds, "threshold", "REASON=N: open an alert at N dropped records within the window (repeatable; default 1 for every reason)")
	severities := kvFlag{}
	fs.Var(severities, "severity", "REASON=LEVEL: severity label for a reason (repeatable; default "+def.DefaultSeverity+")")
	labels := kvFlag{}
	fs.Var(labels, "label", "NAME=VALUE added to every alert, e.g. cluster=prod (repeatable)")
	generator := fs.String("generator-url", "", "generatorURL of every alert (a dashboard or runbook)")
	startFromEnd := fs.Bool("start-from-end", false, "a new group starts at the end of the topic (default: alerts once on drops already there)")
	metricsAddr := fs.String("metrics-addr", "127.0.0.1:9465", "address for /metrics and /healthz; empty disables")
	logf := addLogFlags(fs, app.DefaultConfig().Log)
	check := fs.Bool("check", false, "validate the flags and exit")
	if err := fs.Parse(args); err != nil {
		return exitError{2, err}
	}
	if fs.NArg() > 0 {
		return exitError{2, fmt.Errorf("alert: unexpected argument %q", fs.Arg(0))}
	}
	warnDeprecated(fs)
	cfg := def
	cfg.Topic, cfg.Group, cfg.WebhookURL, cfg.GeneratorURL = *topic, *group, *webhook, *generator
	cfg.Window, cfg.Quiet, cfg.ResendInterval, cfg.MinSendInterval = *window, *quiet, *resend, *minInterval
	cfg.StartFromEnd = *startFromEnd
	cfg.AlertmanagerURLs = splitList(*am)
	var bad []string
	if len(thresholds) > 0 {
		cfg.Thresholds = map[dropalerts.Reason]int{}
		for r, v := range thresholds {
			n, err := strconv.Atoi(v)
			if err != nil {
				bad = append(bad, fmt.Sprintf("--threshold %s=%s: not a number", r, v))
			}
			cfg.Thresholds[dropalerts.Reason(r)] = n
		}
	}
	if len(severities) > 0 {
		cfg.Severities = map[dropalerts.Reason]string{}
		for r, v := range severities {
			cfg.Severities[dropalerts.Reason(r)] = v
		}
	}
	if len(labels) > 0 {
		cfg.ExternalLabels = map[string]string(labels)
	}
	if err := cfg.Validate(); err != nil {
		bad = append(bad, err.Error())
	}
	if _, err := parseBrokers(*brokers); err != nil {
		bad = append(bad, err.Error())
	}
	logCfg, err := logf.config()
	if err != nil {
		bad = append(bad, err.Error())
	}
	if len(bad) > 0 {
		return exitError{2, app.ConfigError(errors.New(strings.Join(bad, "\n")))}
	}
	if *check {
		fmt.Fprintln(stdout, "config ok")
		return nil
	}

	log := app.NewLogger(logCfg)
	reg := app.NewRegistry()
	sec, err := envKafkaSecurityOpts(ctx, splitList(*brokers))
	if err != nil {
		return err
	}
	kopts := append(append([]kgo.Opt{kgo.SeedBrokers(splitList(*brokers)...), kgo.ClientID("spanpipe-alert")}, app.KafkaOpts(reg, app.KafkaLogger(logCfg), "alert")...), sec...)
	a, err := alerting.New(cfg, kopts, alerting.WithLogger(log), alerting.WithRegisterer(reg))
	if err != nil {
		return err
	}
	if *metricsAddr != "" {
		stop, err := serveMetrics(*metricsAddr, reg, nil, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	return a.Run(ctx)
}

// kvFlag collects repeatable NAME=VALUE flags (each may also be comma-separated).
type kvFlag map[string]string

func (f kvFlag) String() string {
	parts := make([]string, 0, len(f))
	for k, v := range f {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

func (f kvFlag) Set(s string) error {
	for _, kv := range splitList(s) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("want NAME=VALUE, got %q", kv)
		}
		f[k] = v
	}
	return nil
}

// splitList splits a comma-separated flag, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
