package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const replayHelp = `usage: spanpipe replay --brokers HOST:PORT [filters] [--dry-run]

Re-publishes dead letters (records with header spanpipe-kind=dead-letter) from the
dead-letter topic to the topic and partition they came from (headers
spanpipe-source-topic and spanpipe-source-partition), with their original key, value,
timestamp and headers; the headers the drop path added (spanpipe-kind,
spanpipe-drop-*, spanpipe-source-*, spanpipe-attempts, spanpipe-first-failure,
spanpipe-component) are removed. Writes with acks=all through an idempotent producer.

Reads the dead-letter topic from its start up to the end offsets captured when the
command starts, then stops; progress goes to stderr every second, a table of what
matched (per reason, source topic and partition) to stdout. --dry-run prints the table
and publishes nothing.

Safe to run twice, or over a range that was already replayed: the sinks are
idempotent (a span is stored once per trace id and span id, the highest version wins;
logs, metrics, scores and feedback are keyed by their ids), so a record replayed twice
is stored once. A record that fails again becomes a new dead letter.

flags (the filters must all match):
`

func runReplay(ctx context.Context, args []string) error {
	return replay(ctx, args, stdout, os.Stderr)
}

type replayFilter struct {
	reasons      []dropalerts.Reason
	sourceTopic  string
	partition    int // -1: any
	from, to     int64
	since, until time.Time
}

func (f *replayFilter) match(d *dropalerts.DeadLetterInfo, ts time.Time) bool {
	if len(f.reasons) > 0 && !slices.Contains(f.reasons, d.Reason) {
		return false
	}
	if f.sourceTopic != "" && d.SourceTopic != f.sourceTopic {
		return false
	}
	if f.partition >= 0 && int(d.SourcePartition) != f.partition {
		return false
	}
	if (f.from >= 0 && d.SourceOffset < f.from) || (f.to >= 0 && d.SourceOffset > f.to) {
		return false
	}
	t := d.FirstFailure
	if t.IsZero() {
		t = ts
	}
	return (f.since.IsZero() || !t.Before(f.since)) && (f.until.IsZero() || !t.After(f.until))
}

type replayKey struct {
	reason    string
	topic     string
	partition int32
}

type replayCount struct {
	n           int64
	first, last int64
}

func replay(ctx context.Context, args []string, out, errOut io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.Usage = func() { fmt.Fprint(fs.Output(), replayHelp); fs.PrintDefaults() }
	brokers := fs.String("brokers", envOr("SPANPIPE_KAFKA_BROKERS", "127.0.0.1:9092"), "seed brokers, comma-separated (env SPANPIPE_KAFKA_BROKERS)")
	dlTopic := fs.String("deadletter-topic", "spanpipe.drops", "topic holding the dead letters (drops.dead_letter_topic, or the drop topic)")
	reasons := fs.String("reason", "", "only these drop reasons, comma-separated")
	sourceTopic := fs.String("source-topic", "", "only dead letters from this source topic")
	partition := fs.Int("source-partition", -1, "only dead letters from this source partition")
	from := fs.Int64("from-offset", -1, "with --source-partition: only source offsets >= this")
	to := fs.Int64("to-offset", -1, "with --source-partition: only source offsets <= this")
	since := fs.String("since", "", "only dead letters that first failed at or after this time (RFC 3339, or a duration ago such as 2h)")
	until := fs.String("until", "", "only dead letters that first failed at or before this time (RFC 3339, or a duration ago)")
	dryRun := fs.Bool("dry-run", false, "count what would be replayed, per reason, source topic and partition; publish nothing")
	idle := fs.Duration("idle-timeout", 30*time.Second, "stop if nothing arrives for this long before the captured end offsets are reached")
	if err := fs.Parse(args); err != nil {
		return exitError{2, err}
	}
	now := time.Now()
	f := replayFilter{sourceTopic: *sourceTopic, partition: *partition, from: *from, to: *to}
	var bad []error
	for _, r := range splitList(*reasons) {
		if !slices.Contains(dropalerts.AllReasons, dropalerts.Reason(r)) {
			bad = append(bad, fmt.Errorf("--reason: unknown reason %q (known: %v)", r, dropalerts.AllReasons))
		}
		f.reasons = append(f.reasons, dropalerts.Reason(r))
	}
	var err error
	if f.since, err = parseTimeArg(*since, now); err != nil {
		bad = append(bad, fmt.Errorf("--since: %w", err))
	}
	if f.until, err = parseTimeArg(*until, now); err != nil {
		bad = append(bad, fmt.Errorf("--until: %w", err))
	}
	if !f.since.IsZero() && !f.until.IsZero() && f.until.Before(f.since) {
		bad = append(bad, errors.New("--until is before --since"))
	}
	if (*from >= 0 || *to >= 0) && *partition < 0 {
		bad = append(bad, errors.New("--from-offset and --to-offset need --source-partition (offsets are per partition)"))
	}
	if *from >= 0 && *to >= 0 && *to < *from {
		bad = append(bad, errors.New("--to-offset is below --from-offset"))
	}
	if len(splitList(*brokers)) == 0 || *dlTopic == "" {
		bad = append(bad, errors.New("--brokers and --deadletter-topic must not be empty"))
	}
	if fs.NArg() > 0 {
		bad = append(bad, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if err := errors.Join(bad...); err != nil {
		return exitError{2, fmt.Errorf("replay: %w", err)}
	}

	sec, err := envKafkaSecurityOpts(ctx, splitList(*brokers))
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(splitList(*brokers)...),
		kgo.ClientID("spanpipe-replay"),
		kgo.RequiredAcks(kgo.AllISRAcks()), // the default, and idempotent: said here because replay depends on it
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(16<<20 + 64<<10),
		kgo.MaxBufferedBytes(64 << 20),
		kgo.FetchMaxBytes(64 << 20),
	}, sec...)...)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	defer cl.Close()

	// The range to read: start offsets to the end offsets as of now. Records that
	// arrive later, replay's own failures among them, are left for a later run.
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, *dlTopic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return fmt.Errorf("replay: start offsets of %s: %w", *dlTopic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, *dlTopic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("replay: end offsets of %s: %w", *dlTopic, err)
	}
	end := map[int32]int64{}
	consume := map[int32]kgo.Offset{}
	var total int64
	ends.Each(func(o kadm.ListedOffset) {
		s, _ := starts.Lookup(o.Topic, o.Partition)
		if o.Offset > s.Offset {
			end[o.Partition] = o.Offset
			consume[o.Partition] = kgo.NewOffset().At(s.Offset)
			total += o.Offset - s.Offset
		}
	})

	var (
		read, matched, skipped, malformed int64
		published, failed                 atomic.Int64
		errMu                             sync.Mutex
		firstErr                          error
		counts                            = map[replayKey]*replayCount{}
	)
	progress := func() {
		fmt.Fprintf(errOut, "replay: read %d/%d records of %s, %d matched, %d published, %d failed\n",
			read, total, *dlTopic, matched, published.Load(), failed.Load())
	}
	if len(consume) > 0 {
		cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{*dlTopic: consume})
	}
	lastProgress, lastRecord := time.Now(), time.Now()
	for len(end) > 0 {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fetches := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			progress()
			return fmt.Errorf("replay: interrupted: %w", ctx.Err())
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				fmt.Fprintf(errOut, "replay: fetch %s[%d]: %v\n", t, p, err)
			}
		})
		for _, r := range fetches.Records() {
			e, ok := end[r.Partition]
			if !ok || r.Offset >= e {
				continue
			}
			lastRecord = time.Now()
			read++
			if r.Offset >= e-1 {
				delete(end, r.Partition)
			}
			orig, d, err := dropalerts.OriginalRecord(r)
			if errors.Is(err, dropalerts.ErrNotDeadLetter) {
				skipped++ // a drop event, or not ours
				continue
			}
			if err != nil {
				if malformed++; malformed <= 5 {
					fmt.Fprintf(errOut, "replay: skipping %s[%d]@%d: %v\n", r.Topic, r.Partition, r.Offset, err)
				}
				continue
			}
			if !f.match(d, r.Timestamp) {
				skipped++
				continue
			}
			if orig.Topic == *dlTopic {
				if malformed++; malformed <= 5 {
					fmt.Fprintf(errOut, "replay: skipping %s[%d]@%d: its source is the dead-letter topic itself\n", r.Topic, r.Partition, r.Offset)
				}
				continue
			}
			matched++
			k := replayKey{string(d.Reason), d.SourceTopic, d.SourcePartition}
			if c := counts[k]; c == nil {
				counts[k] = &replayCount{1, d.SourceOffset, d.SourceOffset}
			} else {
				c.n++
				c.first, c.last = min(c.first, d.SourceOffset), max(c.last, d.SourceOffset)
			}
			if *dryRun {
				continue
			}
			cl.Produce(ctx, orig, func(_ *kgo.Record, err error) {
				if err == nil {
					published.Add(1)
					return
				}
				failed.Add(1)
				errMu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("%s[%d] offset %d: %w", orig.Topic, orig.Partition, d.SourceOffset, err)
				}
				errMu.Unlock()
			})
		}
		if time.Since(lastProgress) >= time.Second {
			lastProgress = time.Now()
			progress()
		}
		if len(end) > 0 && time.Since(lastRecord) > *idle {
			var left []string
			for p, e := range end {
				left = append(left, fmt.Sprintf("%d (to offset %d)", p, e))
			}
			fmt.Fprintf(errOut, "replay: nothing read for %s; stopping before the end of partitions %s\n", *idle, strings.Join(left, ", "))
			break
		}
	}
	if !*dryRun {
		if err := cl.Flush(ctx); err != nil {
			return fmt.Errorf("replay: flush: %w", err)
		}
	}
	progress()
	printReplayTable(out, counts)
	switch {
	case *dryRun:
		fmt.Fprintf(out, "dry run: %d dead letters would be replayed (%d records read, %d skipped, %d malformed)\n", matched, read, skipped, malformed)
	default:
		fmt.Fprintf(out, "replayed %d dead letters (%d failed; %d records read, %d skipped, %d malformed)\n", published.Load(), failed.Load(), read, skipped, malformed)
	}
	if failed.Load() > 0 {
		return fmt.Errorf("replay: %d records not published; first error: %w", failed.Load(), firstErr)
	}
	return nil
}

func printReplayTable(out io.Writer, counts map[replayKey]*replayCount) {
	keys := make([]replayKey, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b replayKey) int {
		return cmp.Or(cmp.Compare(a.reason, b.reason), cmp.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
	})
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REASON\tSOURCE TOPIC\tPARTITION\tDEAD LETTERS\tSOURCE OFFSETS")
	for _, k := range keys {
		c := counts[k]
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d-%d\n", oneLine(k.reason), oneLine(k.topic), k.partition, c.n, c.first, c.last)
	}
	_ = tw.Flush()
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
