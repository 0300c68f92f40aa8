package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/app"
)

const offsetsHelp = `usage: spanpipe offsets skip --partition P --to-offset N [--group G] [--topic T] [--why TEXT] [--dry-run]

  skip  moves a stopped consumer group past an offset range of one partition:
        from its committed offset (or the log start, when it has none) up to
        --to-offset, which becomes the next offset it reads. Before it moves the
        group it publishes a skipped-by-operator drop event on the drop topic
        with the range, the number of offsets and --why, so the skip shows up
        where every other loss does (drops tail, alert, the explorer). The
        records stay in Kafka until retention deletes them.

        It refuses while the group has members: a running member would overwrite
        the moved offset with its next commit (and the broker refuses commits from
        outside a live group). Stop the group's consumers, skip, start them again.
        --from-offset, when given, must be where the group stands: a guard against
        skipping a range someone else already moved past.
`

func runOffsets(ctx context.Context, args []string) error {
	return runSubcommand(ctx, "offsets", offsetsHelp, args, map[string]func(context.Context, []string, io.Writer) error{"skip": offsetsSkip})
}

func offsetsSkip(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("offsets skip", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), offsetsHelp+"\nflags:\n"); fs.PrintDefaults() }
	af := addAdminFlags(fs)
	group := fs.String("group", "", "consumer group to move (default kafka.group)")
	partition := fs.Int("partition", -1, "partition of --topic (required)")
	from := fs.Int64("from-offset", -1, "where the group must stand now (default: wherever it is)")
	to := fs.Int64("to-offset", -1, "the next offset the group reads: every offset before it is skipped (required)")
	why := fs.String("why", "", "why the range is skipped, written into the drop event")
	dryRun := fs.Bool("dry-run", false, "say what would be skipped; publish and move nothing")
	if err := fs.Parse(args); err != nil {
		return exitError{2, err}
	}
	var bad problems
	cfg := af.load(fs, &bad)
	if *group == "" {
		*group = cfg.Kafka.Group
	}
	bad.check(*group != "", "--group must not be empty")
	bad.check(len(cfg.Kafka.Topics) == 1, "--topic must name one topic, got %v", cfg.Kafka.Topics)
	bad.check(*partition >= 0, "--partition must be >= 0 (which partition to move)")
	bad.check(*to >= 0, "--to-offset must be >= 0 (the next offset the group reads)")
	bad.check(*from >= -1, "--from-offset must be >= 0")
	bad.check(fs.NArg() == 0, "offsets skip: unexpected argument %q", fs.Arg(0))
	if err := bad.err(); err != nil {
		return err
	}
	topic, part := cfg.Kafka.Topics[0], int32(*partition)

	sec, err := kafkaSecurityOpts(ctx, cfg.Kafka.Security, cfg.Kafka.Brokers)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Kafka.Brokers...), kgo.ClientID("spanpipe-offsets"),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0)}, sec...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	groups, err := adm.DescribeGroups(ctx, *group)
	if err != nil {
		return fmt.Errorf("offsets skip: describe group %s: %w", *group, err)
	}
	if g, ok := groups[*group]; ok {
		if g.Err != nil && !errors.Is(g.Err, kerr.GroupIDNotFound) { // a group never used is fine
			return fmt.Errorf("offsets skip: describe group %s: %w", *group, g.Err)
		}
		if len(g.Members) > 0 {
			return exitError{1, fmt.Errorf("offsets skip: group %s has %s (state %s): stop its consumers first; "+
				"a running member would overwrite the moved offset with its next commit, and the broker refuses commits from outside a live group",
				*group, plural(len(g.Members), "active member", "active members"), g.State)}
		}
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("offsets skip: start offsets of %s: %w", topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("offsets skip: end offsets of %s: %w", topic, err)
	}
	start, ok1 := starts.Lookup(topic, part)
	end, ok2 := ends.Lookup(topic, part)
	if !ok1 || !ok2 || start.Err != nil || end.Err != nil {
		return exitError{1, fmt.Errorf("offsets skip: %s has no partition %d", topic, part)}
	}
	committed, err := adm.FetchOffsets(ctx, *group)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return fmt.Errorf("offsets skip: committed offsets of group %s: %w", *group, err)
	}
	at, where := start.Offset, "has no committed offset there and would start at the log start"
	if c, ok := committed.Lookup(topic, part); ok && c.Err == nil && c.At >= 0 {
		at, where = c.At, "stands at"
	}
	if at < start.Offset {
		at, where = start.Offset, "stands below the log start (retention deleted the rest) at"
	}
	switch {
	case *from >= 0 && *from != at:
		return exitError{1, fmt.Errorf("offsets skip: group %s %s %d on %s[%d], not --from-offset %d; nothing moved", *group, where, at, topic, part, *from)}
	case *to <= at:
		return exitError{1, fmt.Errorf("offsets skip: group %s %s %d on %s[%d]: --to-offset %d is not past it (replay reads records again; skip only moves forward)",
			*group, where, at, topic, part, *to)}
	case *to > end.Offset:
		return exitError{1, fmt.Errorf("offsets skip: --to-offset %d is past the end of %s[%d] (%d)", *to, topic, part, end.Offset)}
	}
	n := *to - at
	what := fmt.Sprintf("%s[%d] offsets %d..%d (%s) for group %s", topic, part, at, *to-1, plural(int(n), "offset", "offsets"), *group)
	if *dryRun {
		fmt.Fprintf(out, "would skip %s; nothing published or moved (--dry-run)\n", what)
		return nil
	}

	now := time.Now().UTC()
	ev := dropalerts.Event{
		Reason: dropalerts.ReasonSkippedByOperator, Count: int(n), FirstTime: now, LastTime: now,
		Component: dropalerts.ComponentOperator, Instance: "group " + *group,
		Error:  dropalerts.SanitizeError(errors.New(skipText(*why))),
		Source: &dropalerts.Source{Topic: topic, Partition: part, FirstOffset: at, LastOffset: *to - 1},
	}
	dc := cfg.Drops
	ensureTopics(ctx, cfg.Kafka.Brokers, []string{dc.Topic}, app.TopicsConfig{Create: dc.CreateTopics, Partitions: dc.Partitions,
		ReplicationFactor: dc.ReplicationFactor, Configs: derefConfigs(dc.TopicConfigs())}, sec, app.NewLogger(cfg.Log))
	rec, err := dropalerts.EventRecord(cfg.Drops.Topic, ev)
	if err != nil {
		return err
	}
	// The drop event goes first: if the commit then fails, a false record of a skip
	// is visible and can be explained; a skip without its record would be silent loss.
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("offsets skip: publish the drop event to %s: %w; nothing moved", cfg.Drops.Topic, err)
	}
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: topic, Partition: part, At: *to, LeaderEpoch: -1, Metadata: "spanpipe offsets skip"})
	resp, err := adm.CommitOffsets(ctx, *group, offs)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("offsets skip: the drop event is on %s (offset %d) but moving group %s failed: %w; nothing was skipped, run again",
			cfg.Drops.Topic, rec.Offset, *group, err)
	}
	fmt.Fprintf(out, "skipped %s; recorded as a %s drop event on %s (offset %d)\n", what, dropalerts.ReasonSkippedByOperator, cfg.Drops.Topic, rec.Offset)
	return nil
}

func skipText(why string) string {
	if why == "" {
		return "skipped by an operator with spanpipe offsets skip"
	}
	return "skipped by an operator with spanpipe offsets skip: " + why
}
