package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/app"
	"github.com/spanpipe/spanpipe/replay"
	"github.com/twmb/franz-go/pkg/kgo"
)

const replayHelp = `usage: spanpipe replay --brokers HOST:PORT [filters] [--dry-run]

Re-publishes dead letters (records with header spanpipe-kind=dead-letter) from the
dead-letter topic to the topic and partition they came from (headers
spanpipe-source-topic and spanpipe-source-partition), with their original key, value,
timestamp and headers; the headers the drop path added (spanpipe-kind,
spanpipe-drop-*, spanpipe-source-*, spanpipe-attempts, spanpipe-first-failure,
spanpipe-component) are removed. Writes with acks=all through an idempotent producer,
in batches cut to the target topic's max.message.bytes.

It publishes only to the topics --to-topics allows, whatever a dead letter's headers
say; dead letters from other topics are counted and left. Truncated dead letters
(spanpipe-drop-truncated) are never re-published.

It remembers what it replayed: each run starts where the last one of --group
stopped and reads up to the end offsets captured when it starts, then commits, after
publishing, up to the first dead letter it left (filtered out, not allowed, too
large). Every re-published record carries its lineage (spanpipe-replay-of: the first
dead letter's topic/partition/offset; spanpipe-replay-count), so a record that fails
again is the same failure: a run replays each lineage once, and replaying poison twice
leaves as many failures as before, not twice as many. --from-start reads everything
again; sinks are idempotent, so a record stored twice is stored once.

Progress goes to stderr every second; a table of what matched (per reason, source
topic and partition) and the dead-letter offsets read and remembered go to stdout.
--dry-run prints the table and publishes and remembers nothing.

flags (the filters must all match):
`

func runReplay(ctx context.Context, args []string) error {
	return replayCmd(ctx, args, stdout, os.Stderr)
}

func replayCmd(ctx context.Context, args []string, out, errOut io.Writer) error {
	def := replay.DefaultConfig()
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.Usage = func() { fmt.Fprint(fs.Output(), replayHelp); fs.PrintDefaults() }
	brokers := brokersFlag(fs)
	dlTopic := fs.String("dead-letter-topic", def.DeadLetterTopic, "topic holding the dead letters (drops.dead_letter_topic, or the drop topic)")
	aliasFlag(fs, "deadletter-topic", "dead-letter-topic")
	toTopics := fs.String("to-topics", envOr("SPANPIPE_KAFKA_TOPICS", strings.Join(def.AllowedTopics, ",")), "the only topics replay may publish to, comma-separated (default: the consumers' topics, env SPANPIPE_KAFKA_TOPICS)")
	group := fs.String("group", def.Group, "consumer group that remembers what was replayed; empty: remember nothing")
	fromStart := fs.Bool("from-start", false, "read the dead-letter topic from its start, ignoring what --group remembers")
	reasons := fs.String("reason", "", "only these drop reasons, comma-separated")
	sourceTopic := fs.String("source-topic", "", "only dead letters from this source topic")
	partition := fs.Int("source-partition", -1, "only dead letters from this source partition")
	from := fs.Int64("from-offset", -1, "with --source-partition: only source offsets >= this")
	to := fs.Int64("to-offset", -1, "with --source-partition: only source offsets <= this")
	since := fs.String("since", "", "only dead letters that first failed at or after this time (RFC 3339, or a duration ago such as 2h)")
	until := fs.String("until", "", "only dead letters that first failed at or before this time (RFC 3339, or a duration ago)")
	dryRun := fs.Bool("dry-run", false, "count what would be replayed, per reason, source topic and partition; publish and remember nothing")
	idle := fs.Duration("idle-timeout", def.IdleTimeout, "stop if nothing arrives for this long before the captured end offsets are reached")
	if err := fs.Parse(args); err != nil {
		return exitError{2, err}
	}
	now := time.Now()
	cfg := def
	cfg.DeadLetterTopic, cfg.AllowedTopics, cfg.Group, cfg.FromStart, cfg.DryRun, cfg.IdleTimeout =
		*dlTopic, splitList(*toTopics), *group, *fromStart, *dryRun, *idle
	cfg.Filter = replay.Filter{SourceTopic: *sourceTopic, Partition: *partition, From: *from, To: *to}
	for _, r := range splitList(*reasons) {
		cfg.Filter.Reasons = append(cfg.Filter.Reasons, dropalerts.Reason(r))
	}
	var bad []error
	var err error
	if cfg.Filter.Since, err = parseTimeArg(*since, now); err != nil {
		bad = append(bad, fmt.Errorf("--since: %w", err))
	}
	if cfg.Filter.Until, err = parseTimeArg(*until, now); err != nil {
		bad = append(bad, fmt.Errorf("--until: %w", err))
	}
	if _, err := parseBrokers(*brokers); err != nil {
		bad = append(bad, err)
	}
	if fs.NArg() > 0 {
		bad = append(bad, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	bad = append(bad, cfg.Validate())
	warnDeprecated(fs)
	if err := errors.Join(bad...); err != nil {
		return exitError{2, app.ConfigError(err)}
	}

	sec, err := envKafkaSecurityOpts(ctx, splitList(*brokers))
	if err != nil {
		return err
	}
	progress := func(s replay.Stats) {
		fmt.Fprintf(errOut, "replay: read %d/%d records of %s, %d matched, %d published, %d failed\n",
			s.Read, s.Total, cfg.DeadLetterTopic, s.Matched, s.Published, s.Failed)
	}
	res, err := replay.Run(ctx, cfg, append([]kgo.Opt{kgo.SeedBrokers(splitList(*brokers)...)}, sec...), progress)
	if res != nil {
		printReplay(out, errOut, &cfg, res)
	}
	return err
}

func printReplay(out, errOut io.Writer, cfg *replay.Config, res *replay.Result) {
	for _, e := range res.Examples {
		fmt.Fprintf(errOut, "replay: left %s\n", oneLine(e))
	}
	if res.Stopped != "" {
		fmt.Fprintf(errOut, "replay: %s\n", res.Stopped)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REASON\tSOURCE TOPIC\tPARTITION\tDEAD LETTERS\tSOURCE OFFSETS")
	for _, c := range res.Counts {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d-%d\n", oneLine(string(c.Reason)), oneLine(c.Topic), c.Partition, c.DeadLetters, c.FirstOffset, c.LastOffset)
	}
	_ = tw.Flush()
	s := res.Stats
	detail := fmt.Sprintf("%d records read: %d not dead letters, %d filtered out, %d repeats of a lineage replayed in this run, %d from topics not allowed, %d truncated, %d too large, %d malformed",
		s.Read, s.NotDeadLetter, s.Filtered, s.Repeated, s.NotAllowed, s.Truncated, s.TooLarge, s.Malformed)
	if cfg.DryRun {
		fmt.Fprintf(out, "dry run: %d dead letters would be replayed (%s)\n", s.Matched, detail)
	} else {
		fmt.Fprintf(out, "replayed %d dead letters (%d failed; %s)\n", s.Published, s.Failed, detail)
	}
	var parts []string
	for _, r := range res.Ranges {
		p := fmt.Sprintf("%s[%d] %d-%d", cfg.DeadLetterTopic, r.Partition, r.Start, r.End)
		if r.Committed >= 0 {
			p += fmt.Sprintf(" (next run starts at %d)", r.Committed)
		}
		parts = append(parts, p)
	}
	if len(parts) > 0 {
		fmt.Fprintf(out, "dead-letter offsets read: %s\n", strings.Join(parts, ", "))
	}
}

// parseTimeArg reads an RFC 3339 time, or a duration meaning that long before now.
func parseTimeArg(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration", s)
}
