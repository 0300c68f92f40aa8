package integration

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// TestBenchRemovesItsTopics: `spanpipe bench --brokers` against a broker that stays
// up deletes the topics and consumer groups of its run, which hold every span it
// produced (a broker that ran it now and then filled its disk with them).
func TestBenchRemovesItsTopics(t *testing.T) {
	brokers := sharedBrokers(t)
	adm := kadm.NewClient(newClient(t, brokers))
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	withPrefix := func(names []string, err error, prefix string) []string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, n := range names {
			if strings.HasPrefix(n, prefix) {
				out = append(out, n)
			}
		}
		slices.Sort(out)
		return out
	}
	benchTopics := func() []string {
		ts, err := adm.ListTopics(ctx)
		return withPrefix(ts.Names(), err, "bench.")
	}
	benchGroups := func() []string {
		gs, err := adm.ListGroups(ctx)
		return withPrefix(gs.Groups(), err, "bench-")
	}
	topicsBefore, groupsBefore := benchTopics(), benchGroups()

	cmd := exec.CommandContext(ctx, spanpipeBinary(t), "bench", "--brokers", strings.Join(brokers, ","),
		"--sink", "duckdb", "--spans", "2000", "--partitions", "3", "--latency-seconds", "1", "--out", "", "--db-dir", t.TempDir())
	cmd.Env = childEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("spanpipe bench: %v\n%s", err, tail(string(out), 40))
	}
	if !strings.Contains(string(out), "DuckDB append ceiling") {
		t.Fatalf("spanpipe bench did not finish its run:\n%s", tail(string(out), 40))
	}
	// Topic deletion is asynchronous on the broker's side.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ts, gs := benchTopics(), benchGroups()
		if slices.Equal(ts, topicsBefore) && slices.Equal(gs, groupsBefore) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after spanpipe bench: topics %v (before %v), groups %v (before %v); want the run's removed\n%s",
				ts, topicsBefore, gs, groupsBefore, tail(string(out), 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
