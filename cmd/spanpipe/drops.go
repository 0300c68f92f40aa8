package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/twmb/franz-go/pkg/kgo"
)

const dropsHelp = `usage: spanpipe drops <subcommand> [flags]

subcommands:
  tail   print drop events as they arrive on the drop topic, one line each

Run 'spanpipe drops tail -h' for its flags.
`

const tailHelp = `usage: spanpipe drops tail --brokers HOST:PORT [--json] [--from-beginning] [--dead-letters] [flags]

Prints drop events from the drop topic, one line each:

  TIME REASON SIGNAL count=N from=COMPONENT/INSTANCE sink=SINK source=TOPIC[PARTITION]:FIRST-LAST [dead_letters=N] [error="..."]

With --dead-letters, dead letters too (one line per original record). With --json,
each drop event as published (JSON, one per line), and dead letters as JSON objects
without their payload. Reads every partition directly (no consumer group, nothing
committed), from the end unless --from-beginning. Exits on SIGINT, after
--exit-after lines, or after --timeout (status 0 in all three cases); with status 1
when no broker answers, or the topic does not exist, within --connect-timeout.

flags:
`

func runDrops(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, dropsHelp)
		return exitError{2, errors.New("drops: missing subcommand")}
	}
	switch args[0] {
	case "tail":
		return dropsTail(ctx, args[1:], stdout, os.Stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, dropsHelp)
		return nil
	default:
		fmt.Fprint(os.Stderr, dropsHelp)
		return exitError{2, fmt.Errorf("drops: unknown subcommand %q", args[0])}
	}
}

func dropsTail(ctx context.Context, args []string, out, errOut io.Writer) error {
	fs := flag.NewFlagSet("drops tail", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.Usage = func() { fmt.Fprint(fs.Output(), tailHelp); fs.PrintDefaults() }
	brokers := brokersFlag(fs)
	topic := fs.String("drop-topic", "spanpipe.drops", "drop topic, drops.topic (dead letters are read from it too when they share it)")
	aliasFlag(fs, "topic", "drop-topic")
	asJSON := fs.Bool("json", false, "print drop events as published (JSON lines)")
	fromBeginning := fs.Bool("from-beginning", false, "start at the beginning of the topic instead of its end")
	deadLetters := fs.Bool("dead-letters", false, "print dead letters too")
	exitAfter := fs.Int("exit-after", 0, "exit after printing N lines (0: never)")
	timeout := fs.Duration("timeout", 0, "exit after this long (0: never)")
	connectTimeout := fs.Duration("connect-timeout", 30*time.Second, "fail when no broker answers, or the topic does not exist, within this long")
	if err := fs.Parse(args); err != nil {
		return exitError{2, err}
	}
	warnDeprecated(fs)
	var bad problems
	_, err := parseBrokers(*brokers)
	bad.add(err)
	bad.check(*exitAfter >= 0, "--exit-after must be >= 0 (0: never), got %d", *exitAfter)
	bad.check(*timeout >= 0, "--timeout must be >= 0 (0: never), got %s", *timeout)
	bad.check(*connectTimeout > 0, "--connect-timeout must be > 0, got %s", *connectTimeout)
	if err := bad.err(); err != nil {
		return err
	}
	reset := kgo.NewOffset().AtEnd()
	if *fromBeginning {
		reset = kgo.NewOffset().AtStart()
	}
	sec, err := envKafkaSecurityOpts(ctx, splitList(*brokers))
	if err != nil {
		return err
	}
	watch := newBrokerWatch(slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: slog.LevelWarn})))
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(splitList(*brokers)...), kgo.ClientID("spanpipe-drops-tail"),
		kgo.ConsumeTopics(*topic), kgo.ConsumeResetOffset(reset), kgo.FetchMaxBytes(64 << 20), kgo.WithHooks(watch)}, sec...)...)
	if err != nil {
		return fmt.Errorf("drops tail: %w", err)
	}
	defer cl.Close()
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	// Tailing a broker nobody reaches, or a topic that is not there, printed nothing
	// and exited 0: indistinguishable from "no drops".
	wait := *connectTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
		wait = time.Until(dl)
	}
	if _, err := awaitKafka(ctx, cl, watch, splitList(*brokers), []string{*topic}, wait, true); err != nil {
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil // SIGINT
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("no answer from %s within --timeout %s: %s", *brokers, *timeout, orDash(watch.Problem()))
		}
		return exitError{1, fmt.Errorf("drops tail: %w (check --brokers and --topic; the drop topic exists once something was dropped)", err)}
	}
	printed := 0
	var lastErr string
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil // SIGINT or --timeout: a normal end for a tail
		}
		fetches.EachError(func(t string, p int32, err error) {
			if s := err.Error(); s != lastErr { // kgo retries; say each new problem once
				lastErr = s
				fmt.Fprintf(errOut, "drops tail: %s[%d]: %v\n", t, p, err)
			}
		})
		for _, r := range fetches.Records() {
			line, ok := tailLine(r, *asJSON, *deadLetters, errOut)
			if !ok {
				continue
			}
			if _, err := fmt.Fprintln(out, line); err != nil {
				return err // stdout closed (a pipe into head)
			}
			printed++
			if *exitAfter > 0 && printed >= *exitAfter {
				return nil
			}
		}
	}
}

// tailLine renders one record of the drop topic; false means print nothing.
func tailLine(r *kgo.Record, asJSON, deadLetters bool, errOut io.Writer) (string, bool) {
	switch dropalerts.Kind(r) {
	case dropalerts.KindDropEvent:
		ev, err := dropalerts.ParseEvent(r.Value)
		if err != nil {
			fmt.Fprintf(errOut, "drops tail: unreadable drop event at %s[%d]@%d: %v\n", r.Topic, r.Partition, r.Offset, err)
			return "", false
		}
		if asJSON {
			raw := jsontext.Value(r.Value)
			if err := raw.Compact(); err != nil {
				return "", false
			}
			return string(raw), true
		}
		return formatDropEvent(ev), true
	case dropalerts.KindDeadLetter:
		if !deadLetters {
			return "", false
		}
		d, err := dropalerts.ParseDeadLetter(r.Headers)
		if err != nil {
			fmt.Fprintf(errOut, "drops tail: unreadable dead letter at %s[%d]@%d: %v\n", r.Topic, r.Partition, r.Offset, err)
			return "", false
		}
		if asJSON {
			b, err := json.Marshal(deadLetterJSON(r, d), json.Deterministic(true))
			if err != nil {
				return "", false
			}
			return string(b), true
		}
		return formatDeadLetter(r, d), true
	default:
		return "", false
	}
}

const tailTime = "2006-01-02T15:04:05.000Z07:00"

func formatDropEvent(ev *dropalerts.Event) string {
	t := ev.LastTime
	if t.IsZero() {
		t = ev.FirstTime
	}
	from := orDash(ev.Component)
	if ev.Instance != "" {
		from += "/" + ev.Instance
	}
	src := "-"
	if s := ev.Source; s != nil {
		src = fmt.Sprintf("%s[%d]:%d-%d", s.Topic, s.Partition, s.FirstOffset, s.LastOffset)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s count=%d from=%s sink=%s source=%s", t.UTC().Format(tailTime), oneLine(orDash(string(ev.Reason))),
		oneLine(orDash(string(ev.Signal))), ev.Count, oneLine(from), oneLine(orDash(ev.Sink)), oneLine(src))
	if ev.DeadLetters > 0 {
		fmt.Fprintf(&b, " dead_letters=%d", ev.DeadLetters)
	}
	if ev.Error != "" {
		fmt.Fprintf(&b, " error=%s", strconv.Quote(ev.Error))
	}
	return b.String()
}

func formatDeadLetter(r *kgo.Record, d *dropalerts.DeadLetterInfo) string {
	t := d.FirstFailure
	if t.IsZero() {
		t = r.Timestamp
	}
	s := fmt.Sprintf("%s dead-letter %s source=%s[%d]:%d key=%s bytes=%d attempts=%d from=%s", t.UTC().Format(tailTime),
		oneLine(string(d.Reason)), oneLine(d.SourceTopic), d.SourcePartition, d.SourceOffset, strconv.Quote(string(r.Key)),
		len(r.Value), d.Attempts, oneLine(orDash(d.Component)))
	if d.Truncated {
		s += fmt.Sprintf(" truncated_from=%d", d.OriginalSize)
	}
	if d.ReplayOf != "" {
		s += fmt.Sprintf(" replay_of=%s replays=%d", oneLine(d.ReplayOf), d.ReplayCount)
	}
	if d.Error != "" {
		s += " error=" + strconv.Quote(d.Error)
	}
	return s
}

type deadLetterOut struct {
	Kind         string            `json:"kind"`
	Topic        string            `json:"topic"`
	Partition    int32             `json:"partition"`
	Offset       int64             `json:"offset"`
	Reason       string            `json:"reason"`
	Error        string            `json:"error,omitempty"`
	Source       dropalerts.Source `json:"source"`
	Attempts     int               `json:"attempts"`
	FirstFailure time.Time         `json:"firstFailure,omitzero"`
	Component    string            `json:"component,omitempty"`
	Key          string            `json:"key"`
	ValueBytes   int               `json:"valueBytes"`
	// OriginalBytes is set when the value was truncated to fit the topic.
	OriginalBytes int    `json:"originalBytes,omitempty"`
	ReplayOf      string `json:"replayOf,omitempty"`
	ReplayCount   int    `json:"replayCount,omitempty"`
}

func deadLetterJSON(r *kgo.Record, d *dropalerts.DeadLetterInfo) deadLetterOut {
	valid := func(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
	o := deadLetterOut{
		Kind: dropalerts.KindDeadLetter, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
		Reason: valid(string(d.Reason)), Error: valid(d.Error), Attempts: d.Attempts, FirstFailure: d.FirstFailure,
		Source:    dropalerts.Source{Topic: valid(d.SourceTopic), Partition: d.SourcePartition, FirstOffset: d.SourceOffset, LastOffset: d.SourceOffset},
		Component: valid(d.Component), Key: valid(string(r.Key)), ValueBytes: len(r.Value),
		ReplayOf: valid(d.ReplayOf), ReplayCount: d.ReplayCount,
	}
	if d.Truncated {
		o.OriginalBytes = d.OriginalSize
	}
	return o
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a field from breaking the one-line-per-event format.
func oneLine(s string) string {
	if strings.ContainsAny(s, " \t\r\n\"") || !strconv.CanBackquote(s) {
		return strconv.Quote(s)
	}
	return s
}
