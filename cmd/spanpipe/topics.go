package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/app"
)

const topicsHelp = `usage: spanpipe topics create [flags]
       spanpipe topics describe [flags] [topic...]

  create    create the topics spanpipe uses, when missing: the spans topics
            (kafka.topics) with topics.partitions, topics.replication_factor and
            topics.configs; the drop topic and the dead-letter topic (drops.topic,
            drops.dead_letter_topic) with drops.partitions, drops.replication_factor
            and their retention, size and compression configs. --grow adds
            partitions to a spans topic that has fewer than topics.partitions.
  describe  show each topic's partitions, replication, the configs set on it, and
            per partition its leader, replicas, in-sync replicas, start and end
            offsets and the consumer group's committed offset and lag.

create acts on the topics of the config (kafka.topics, or --topic, and the drop topics);
describe on the topics named, else on those. Settings come from --config, SPANPIPE_*
variables and the flags.
`

// adminFlags are the flags of the commands that administer topics and groups:
// where the cluster is and which topics are spanpipe's, as the config names them.
type adminFlags struct {
	config, brokers, topics, dropTopic, deadLetterTopic *string
}

func addAdminFlags(fs *flag.FlagSet) *adminFlags {
	def := app.DefaultConfig()
	return &adminFlags{
		config:          fs.String("config", os.Getenv("SPANPIPE_CONFIG"), "YAML config file (env SPANPIPE_CONFIG)"),
		brokers:         fs.String("brokers", "", "seed brokers, comma-separated (overrides kafka.brokers; default env "+brokersEnv+", else "+defaultBrokers+")"),
		topics:          fs.String("topic", "", "spans topics, comma-separated (overrides kafka.topics; default "+strings.Join(def.Kafka.Topics, ",")+")"),
		dropTopic:       fs.String("drop-topic", "", "drop topic (overrides drops.topic; default "+def.Drops.Topic+")"),
		deadLetterTopic: fs.String("dead-letter-topic", "", "dead-letter topic (overrides drops.dead_letter_topic; default: the drop topic)"),
	}
}

// load reads the config and applies the flags given; bad collects the problems.
func (a *adminFlags) load(fs *flag.FlagSet, bad *problems) app.Config {
	cfg, err := app.Load(*a.config, os.Environ())
	bad.add(err)
	if isSet(fs, "brokers") {
		bs, err := parseBrokers(*a.brokers)
		if bad.add(err); err == nil {
			cfg.Kafka.Brokers = bs
		}
	}
	if isSet(fs, "topic") {
		cfg.Kafka.Topics = splitList(*a.topics)
		bad.check(len(cfg.Kafka.Topics) > 0, "--topic must name at least one topic")
	}
	if isSet(fs, "drop-topic") {
		cfg.Drops.Topic = *a.dropTopic
	}
	if isSet(fs, "dead-letter-topic") {
		cfg.Drops.DeadLetterTopic = *a.deadLetterTopic
	}
	bad.check(len(cfg.Kafka.Brokers) > 0, "kafka.brokers must list at least one broker")
	for _, t := range cfg.Kafka.Topics {
		bad.check(dropalerts.ValidTopicName(t), "kafka.topics: %q is not a Kafka topic name", t)
	}
	bad.add(cfg.Kafka.Security.Validate("kafka."))
	bad.add(cfg.Topics.Validate())
	bad.add(cfg.Drops.Validate())
	return cfg
}

// admin connects to the cluster of cfg.
func admin(ctx context.Context, cfg app.Config) (*kadm.Client, error) {
	sec, err := kafkaSecurityOpts(ctx, cfg.Kafka.Security, cfg.Kafka.Brokers)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Kafka.Brokers...), kgo.ClientID("spanpipe-admin")}, sec...)...)
	if err != nil {
		return nil, err
	}
	return kadm.NewClient(cl), nil
}

// dropTopics are the drop topic and, when it is another, the dead-letter topic.
func dropTopics(d dropalerts.Config) []string {
	out := []string{d.Topic}
	if d.DeadLetterTopic != "" && d.DeadLetterTopic != d.Topic {
		out = append(out, d.DeadLetterTopic)
	}
	return out
}

func runTopics(ctx context.Context, args []string) error {
	return runSubcommand(ctx, "topics", topicsHelp, args, map[string]func(context.Context, []string, io.Writer) error{
		"create": topicsCreate, "describe": topicsDescribe})
}

func topicsCreate(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("topics create", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), topicsHelp+"\nflags:\n"); fs.PrintDefaults() }
	af := addAdminFlags(fs)
	def := app.DefaultConfig().Topics
	partitions := fs.Int("partitions", int(def.Partitions), "partitions of a spans topic (overrides topics.partitions)")
	replication := fs.Int("replication-factor", int(def.ReplicationFactor), "replication factor of a spans topic, -1: the broker's default (overrides topics.replication_factor)")
	configs := kvFlag{}
	fs.Var(configs, "topic-config", "NAME=VALUE config of a created spans topic, e.g. retention.ms=604800000 (repeatable; adds to topics.configs)")
	grow := fs.Bool("grow", false, "add partitions to an existing spans topic with fewer than --partitions (records of one key move to another partition)")
	if err := fs.Parse(args); err != nil {
		return exitError{2, err}
	}
	var bad problems
	cfg := af.load(fs, &bad)
	if isSet(fs, "partitions") {
		bad.check(*partitions >= 1 && *partitions <= 1<<20, "--partitions must be >= 1, got %d", *partitions)
		cfg.Topics.Partitions = int32(*partitions)
	}
	if isSet(fs, "replication-factor") {
		bad.check(*replication == -1 || *replication >= 1 && *replication <= 1<<14, "--replication-factor must be >= 1 or -1 (the broker's default), got %d", *replication)
		cfg.Topics.ReplicationFactor = int16(*replication)
	}
	for k, v := range configs {
		if cfg.Topics.Configs == nil {
			cfg.Topics.Configs = map[string]string{}
		}
		cfg.Topics.Configs[k] = v
	}
	bad.check(fs.NArg() == 0, "topics create: unexpected argument %q (name topics with --topic)", fs.Arg(0))
	if err := bad.err(); err != nil {
		return err
	}
	adm, err := admin(ctx, cfg)
	if err != nil {
		return err
	}
	defer adm.Close()

	type plan struct {
		topic       string
		partitions  int32
		replication int16
		configs     map[string]*string
		spans, grow bool
	}
	var plans []plan
	for _, t := range cfg.Kafka.Topics {
		plans = append(plans, plan{t, cfg.Topics.Partitions, cfg.Topics.ReplicationFactor, topicConfigs(cfg.Topics), true, *grow})
	}
	for _, t := range dropTopics(cfg.Drops) {
		plans = append(plans, plan{t, cfg.Drops.Partitions, cfg.Drops.ReplicationFactor, cfg.Drops.TopicConfigs(), false, false})
	}
	var names []string
	for _, p := range plans {
		names = append(names, p.topic)
	}
	existing, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return fmt.Errorf("topics create: list topics on %s: %w", strings.Join(cfg.Kafka.Brokers, ","), err)
	}
	var errs []error
	for _, p := range plans {
		if d, ok := existing[p.topic]; ok && d.Err == nil {
			have := int32(len(d.Partitions))
			switch {
			case have >= p.partitions || !p.spans:
				fmt.Fprintf(out, "exists  %s: %s, replication factor %d\n", p.topic, plural(int(have), "partition", "partitions"), d.Partitions.NumReplicas())
			case p.grow:
				resp, err := adm.UpdatePartitions(ctx, int(p.partitions), p.topic)
				if err == nil {
					err = resp.Error()
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("grow %s to %d partitions: %w", p.topic, p.partitions, err))
					continue
				}
				fmt.Fprintf(out, "grown   %s: from %d to %d partitions\n", p.topic, have, p.partitions)
			default:
				fmt.Fprintf(out, "exists  %s: %s, fewer than %d: no more consumers of a group than that work at once (--grow adds partitions)\n",
					p.topic, plural(int(have), "partition", "partitions"), p.partitions)
			}
			continue
		}
		resp, err := adm.CreateTopic(ctx, p.partitions, p.replication, p.configs, p.topic)
		if err == nil {
			err = resp.Err
		}
		switch {
		case err == nil:
			fmt.Fprintf(out, "created %s: %s, replication factor %s%s\n", p.topic, plural(int(p.partitions), "partition", "partitions"),
				replicationText(p.replication), configsText(p.configs))
		case errors.Is(err, kerr.TopicAlreadyExists):
			fmt.Fprintf(out, "exists  %s (created meanwhile)\n", p.topic)
		default:
			errs = append(errs, fmt.Errorf("create %s: %w", p.topic, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("topics create: %w", errors.Join(errs...))
	}
	return nil
}

func topicConfigs(c app.TopicsConfig) map[string]*string {
	if len(c.Configs) == 0 {
		return nil
	}
	out := make(map[string]*string, len(c.Configs))
	for k, v := range c.Configs {
		out[k] = kadm.StringPtr(v)
	}
	return out
}

func derefConfigs(c map[string]*string) map[string]string {
	out := make(map[string]string, len(c))
	for k, v := range c {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

func replicationText(r int16) string {
	if r == -1 {
		return "the broker's default"
	}
	return fmt.Sprint(r)
}

func configsText(c map[string]*string) string {
	if len(c) == 0 {
		return ""
	}
	var kv []string
	for k, v := range c {
		kv = append(kv, k+"="+*v)
	}
	slices.Sort(kv)
	return ", " + strings.Join(kv, " ")
}

func topicsDescribe(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("topics describe", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), topicsHelp+"\nflags:\n"); fs.PrintDefaults() }
	af := addAdminFlags(fs)
	group := fs.String("group", "", "show this consumer group's committed offsets and lag on the spans topics (default kafka.group)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitError{2, err}
	}
	var bad problems
	cfg := af.load(fs, &bad)
	if err := bad.err(); err != nil {
		return err
	}
	if *group == "" {
		*group = cfg.Kafka.Group
	}
	topics := pos
	if len(topics) == 0 {
		topics = append(slices.Clone(cfg.Kafka.Topics), dropTopics(cfg.Drops)...)
	}
	adm, err := admin(ctx, cfg)
	if err != nil {
		return err
	}
	defer adm.Close()
	details, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		return fmt.Errorf("topics describe: list topics on %s: %w", strings.Join(cfg.Kafka.Brokers, ","), err)
	}
	confs, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("topics describe: configs: %w", err)
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("topics describe: start offsets: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("topics describe: end offsets: %w", err)
	}
	committed, cerr := adm.FetchOffsets(ctx, *group)
	missing := 0
	for i, t := range topics {
		if i > 0 {
			fmt.Fprintln(out)
		}
		d, ok := details[t]
		if !ok || d.Err != nil {
			missing++
			fmt.Fprintf(out, "topic %s: does not exist (spanpipe topics create makes it)\n", t)
			continue
		}
		fmt.Fprintf(out, "topic %s: %s, replication factor %d\n", t, plural(len(d.Partitions), "partition", "partitions"), d.Partitions.NumReplicas())
		fmt.Fprintf(out, "  configs set on the topic: %s\n", setConfigs(confs, t))
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		showGroup := cerr == nil && slices.Contains(cfg.Kafka.Topics, t)
		head := "  partition\tleader\treplicas\tin-sync\tstart\tend"
		if showGroup {
			head += "\tcommitted (" + *group + ")\tlag"
		}
		fmt.Fprintln(tw, head)
		for _, p := range d.Partitions.Sorted() {
			s, _ := starts.Lookup(t, p.Partition)
			e, _ := ends.Lookup(t, p.Partition)
			line := fmt.Sprintf("  %d\t%d\t%v\t%v\t%d\t%d", p.Partition, p.Leader, p.Replicas, p.ISR, s.Offset, e.Offset)
			if showGroup {
				if c, ok := committed.Lookup(t, p.Partition); ok && c.Err == nil && c.At >= 0 {
					line += fmt.Sprintf("\t%d\t%d", c.At, max(e.Offset-c.At, 0))
				} else {
					line += fmt.Sprintf("\t-\t%d", e.Offset-s.Offset)
				}
			}
			fmt.Fprintln(tw, line)
		}
		tw.Flush()
	}
	if missing > 0 {
		return exitError{1, fmt.Errorf("topics describe: %s missing", plural(missing, "topic", "topics"))}
	}
	return nil
}

// setConfigs lists the configs set on the topic itself (the rest are the broker's
// defaults), sorted.
func setConfigs(rcs kadm.ResourceConfigs, topic string) string {
	var kv []string
	for _, rc := range rcs {
		if rc.Name != topic || rc.Err != nil {
			continue
		}
		for _, c := range rc.Configs {
			if c.Source == kmsg.ConfigSourceDynamicTopicConfig && c.Value != nil {
				v := *c.Value
				if c.Sensitive {
					v = "(sensitive)"
				}
				kv = append(kv, c.Key+"="+v)
			}
		}
	}
	if len(kv) == 0 {
		return "none (the broker's defaults)"
	}
	sort.Strings(kv)
	return strings.Join(kv, " ")
}

// ensureTopics creates those of topics that do not exist with tc's settings, so
// that a first produce or consume does not leave the broker to auto-create them with
// its num.partitions (1 unless configured). It never fails the command: a cluster it
// cannot reach or may not create topics on is logged, and the consumer waits for
// the topic as before. It returns the topics it created.
func ensureTopics(ctx context.Context, brokers, topics []string, tc app.TopicsConfig, sec []kgo.Opt, log *slog.Logger) []string {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ClientID("spanpipe-admin")}, sec...)...)
	if err != nil {
		log.Warn("cannot check the topics", "topics", topics, "err", err)
		return nil
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	details, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		log.Warn("cannot check the topics", "topics", topics, "brokers", brokers, "err", err)
		return nil
	}
	var created []string
	for _, t := range topics {
		if d, ok := details[t]; ok && d.Err == nil {
			if n := int32(len(d.Partitions)); n < tc.Partitions {
				log.Info("topic has fewer partitions than topics.partitions: at most that many consumers of a group work at once; spanpipe topics create --grow adds partitions",
					"topic", t, "partitions", n, "topics.partitions", tc.Partitions)
			}
			continue
		}
		if !tc.Create {
			log.Warn("topic does not exist; waiting for it (topics.create is false: spanpipe topics create makes it)", "topic", t)
			continue
		}
		resp, err := adm.CreateTopic(ctx, tc.Partitions, tc.ReplicationFactor, topicConfigs(tc), t)
		if err == nil {
			err = resp.Err
		}
		switch {
		case err == nil:
			created = append(created, t)
			log.Info("created topic", "topic", t, "partitions", tc.Partitions, "replication_factor", tc.ReplicationFactor)
		case errors.Is(err, kerr.TopicAlreadyExists):
		default:
			log.Warn("topic does not exist and cannot be created; waiting for it (spanpipe topics create, or an admin, makes it)", "topic", t, "err", err)
		}
	}
	return created
}
