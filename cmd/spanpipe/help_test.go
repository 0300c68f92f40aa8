package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// binary builds the spanpipe command once per test run, so that tests can meet the
// command line the way a user does: exit codes, stdout and stderr of a real process.
// $SPANPIPE_BIN overrides it, e.g. to check a test against an older build.
var binary = sync.OnceValues(func() (string, error) {
	if p := os.Getenv("SPANPIPE_BIN"); p != "" {
		return p, nil
	}
	dir, err := filepath.Abs(filepath.Join("..", "..", "bin"))
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "spanpipe-cmdtest")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", &buildError{string(out), err}
	}
	return bin, nil
})

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return "go build: " + e.err.Error() + "\n" + e.out }

// TestHelpExitsZero: `spanpipe <command> -h` is a question, not a mistake: it
// prints what the command does and its flags, and exits 0 (it used to exit 2 with
// "flag: help requested", and most commands printed flags without a word on what
// they do).
func TestHelpExitsZero(t *testing.T) {
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range commands {
		if c.run == nil {
			continue
		}
		args := [][]string{{c.name, "-h"}}
		if c.name != "completion" {
			for _, s := range c.subs {
				args = append(args, []string{c.name, s, "-h"})
			}
		}
		for _, a := range args {
			t.Run(strings.Join(a, " "), func(t *testing.T) {
				out, err := exec.Command(bin, a...).CombinedOutput()
				if err != nil {
					t.Fatalf("spanpipe %s: %v\n%s", a, err, out)
				}
				if strings.Contains(string(out), "help requested") || (len(c.subs) == 0 || len(a) == 3) && !strings.Contains(string(out), "  -") {
					t.Fatalf("spanpipe %s printed %q, want the flags and no error", a, out)
				}
				if len(a) == 2 && !strings.HasPrefix(string(out), "spanpipe "+c.name+": "+c.summary+"\n") {
					t.Errorf("spanpipe %s does not start with what the command does:\n%s", a, out)
				}
			})
		}
	}
}

// TestSameFlagsEverywhere: the commands that run until stopped take --log-level
// and --log-format, and every command that talks to Kafka takes --brokers with the
// one default and environment variable.
func TestSameFlagsEverywhere(t *testing.T) {
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	help := func(args ...string) string {
		out, _ := exec.Command(bin, append(args, "-h")...).CombinedOutput()
		return string(out)
	}
	for _, cmd := range [][]string{{"dev"}, {"consume"}, {"produce"}, {"serve"}, {"alert"}} {
		h := help(cmd...)
		for _, f := range []string{"-log-level", "-log-format"} {
			if !strings.Contains(h, "  "+f+" ") {
				t.Errorf("spanpipe %s has no %s", cmd, f)
			}
		}
	}
	for _, cmd := range [][]string{{"produce"}, {"alert"}, {"drops", "tail"}, {"replay"}} {
		if h := help(cmd...); !strings.Contains(h, `seed brokers, comma-separated (env SPANPIPE_KAFKA_BROKERS) (default "127.0.0.1:9092")`) {
			t.Errorf("spanpipe %s: --brokers is not the common one:\n%s", cmd, h)
		}
	}
	for _, cmd := range [][]string{{"consume"}, {"topics", "create"}, {"topics", "describe"}, {"offsets", "skip"}} {
		if h := help(cmd...); !strings.Contains(h, "default env SPANPIPE_KAFKA_BROKERS, else 127.0.0.1:9092") || !strings.Contains(h, "  -topic string") {
			t.Errorf("spanpipe %s: --brokers or --topic is not the common one:\n%s", cmd, h)
		}
	}
}

func TestVersion(t *testing.T) {
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	for _, arg := range []string{"version", "--version"} {
		out, err := exec.Command(bin, arg).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "spanpipe ") || !strings.Contains(string(out), "commit ") {
			t.Errorf("spanpipe %s = %q, %v; want one line with the version and commit", arg, out, err)
		}
	}
}
