package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spanpipe/spanpipe/internal/app"
)

// The flags every command spells the same way, with the same defaults: one
// vocabulary, named after the config keys (kafka.brokers → --brokers, kafka.topics →
// --topic, drops.topic → --drop-topic, drops.dead_letter_topic → --dead-letter-topic,
// log.level → --log-level).

const (
	// brokersEnv and defaultBrokers are where every command finds Kafka unless told.
	brokersEnv     = "SPANPIPE_KAFKA_BROKERS"
	defaultBrokers = "127.0.0.1:9092"
)

// brokersFlag registers --brokers: $SPANPIPE_KAFKA_BROKERS, else 127.0.0.1:9092.
func brokersFlag(fs *flag.FlagSet) *string {
	return fs.String("brokers", envOr(brokersEnv, defaultBrokers), "seed brokers, comma-separated (env "+brokersEnv+")")
}

// parseBrokers splits a --brokers value and says what is wrong with it.
func parseBrokers(s string) ([]string, error) {
	brokers := splitList(s)
	if len(brokers) == 0 {
		return nil, errors.New("--brokers must list at least one host:port")
	}
	for _, b := range brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			return nil, fmt.Errorf("--brokers: %q is not host:port", b)
		}
	}
	return brokers, nil
}

// logFlags are --log-level, --log-format and --kafka-log-level.
type logFlags struct{ level, format, kafka *string }

func addLogFlags(fs *flag.FlagSet, def app.LogConfig) logFlags {
	return logFlags{
		level:  fs.String("log-level", def.Level, "debug, info, warn or error (log.level)"),
		format: fs.String("log-format", def.Format, "text or json (log.format)"),
		kafka:  fs.String("kafka-log-level", def.KafkaLevel, "level of the Kafka client's own lines: debug, info, warn or error (log.kafka_level)"),
	}
}

// apply sets what was given on the command line over cfg (a config file's log.*).
func (l logFlags) apply(fs *flag.FlagSet, cfg *app.LogConfig) {
	if isSet(fs, "log-level") {
		cfg.Level = *l.level
	}
	if isSet(fs, "log-format") {
		cfg.Format = *l.format
	}
	if isSet(fs, "kafka-log-level") {
		cfg.KafkaLevel = *l.kafka
	}
}

// config returns the flags' logging config, or what is wrong with it.
func (l logFlags) config() (app.LogConfig, error) {
	c := app.LogConfig{Level: *l.level, Format: *l.format, KafkaLevel: *l.kafka}
	return c, c.ValidateFlags()
}

// isSet reports whether the flag was given on the command line.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// deprecatedFlags maps an old flag name to the one that replaced it.
var deprecatedFlags = map[string]string{}

// aliasFlag registers old as a deprecated spelling of the already registered flag
// now: both set the same value.
func aliasFlag(fs *flag.FlagSet, old, now string) {
	fs.Var(fs.Lookup(now).Value, old, "deprecated: use --"+now)
	deprecatedFlags[old] = now
}

// warnDeprecated tells the user which deprecated spellings they used.
func warnDeprecated(fs *flag.FlagSet) {
	fs.Visit(func(f *flag.Flag) {
		if now, ok := deprecatedFlags[f.Name]; ok {
			fmt.Fprintf(os.Stderr, "spanpipe: --%s is deprecated; use --%s\n", f.Name, now)
		}
	})
}

// problems collects what is wrong with a command's flags, to report all at once.
type problems []error

// check records the problem unless ok.
func (p *problems) check(ok bool, format string, a ...any) {
	if !ok {
		*p = append(*p, fmt.Errorf(format, a...))
	}
}

// add records err when there is one.
func (p *problems) add(err error) {
	if err != nil {
		*p = append(*p, err)
	}
}

// err is nil, or every problem under one heading with exit status 2.
func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return exitError{2, app.ConfigError(errors.Join(p...))}
}

// checkPaths checks what `--check` can check without connecting: that the files the
// sink would create can be created. A DuckDB file in a directory that does not exist
// fails only when the consumer opens it, after it joined the group.
func checkPaths(cfg app.Config) error {
	if cfg.Sink.Type != app.SinkDuckDB || cfg.Sink.DuckDB.Path == ":memory:" {
		return nil
	}
	dir := filepath.Dir(cfg.Sink.DuckDB.Path)
	st, err := os.Stat(dir)
	switch {
	case err != nil:
		return fmt.Errorf("sink.duckdb.path %s: directory %s: %w", cfg.Sink.DuckDB.Path, dir, errors.Unwrap(err))
	case !st.IsDir():
		return fmt.Errorf("sink.duckdb.path %s: %s is not a directory", cfg.Sink.DuckDB.Path, dir)
	}
	if st, err := os.Stat(cfg.Sink.DuckDB.Path); err == nil && st.IsDir() {
		return fmt.Errorf("sink.duckdb.path %s is a directory; want a file", cfg.Sink.DuckDB.Path)
	}
	return nil
}

// validPort reports whether p is a TCP port a listener can ask for (0: any free one).
func validPort(p int) bool { return p >= 0 && p <= 65535 }

// runSubcommand runs the subcommand of cmd that args name (topics create): help
// (-h) exits 0, a missing or unknown one exits 2, both printing help.
func runSubcommand(ctx context.Context, cmd, help string, args []string, subs map[string]func(context.Context, []string, io.Writer) error) error {
	if len(args) > 0 {
		if run, ok := subs[args[0]]; ok {
			return run(ctx, args[1:], stdout)
		}
	}
	fmt.Fprint(os.Stderr, help)
	names := slices.Sorted(maps.Keys(subs))
	switch {
	case len(args) == 0:
		return exitError{2, fmt.Errorf("%s: want a subcommand: %s", cmd, strings.Join(names, " or "))}
	case args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help":
		return exitError{0, flag.ErrHelp}
	}
	return exitError{2, fmt.Errorf("%s: unknown subcommand %q; want %s", cmd, args[0], strings.Join(names, " or "))}
}
