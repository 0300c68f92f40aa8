package main

import (
	"strings"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/internal/kafkatest"
)

// TestDropsTailFailsOnBadBrokerOrMissingTopic: drops tail against a broker nobody
// can reach, or a drop topic that does not exist, names the problem and exits 1 after
// --connect-timeout. It used to print nothing and exit 0, which reads as "no drops".
func TestDropsTailFailsOnBadBrokerOrMissingTopic(t *testing.T) {
	for _, tc := range []struct {
		name    string
		brokers func(t *testing.T) string
		want    []string
	}{
		{"unreachable", closedPort, []string{"cannot reach Kafka broker", "no Kafka broker reachable", "connection refused"}},
		{"missing topic", func(t *testing.T) string { return kafkatest.Cluster(t, 1, "spanpipe.spans").ListenAddrs()[0] },
			[]string{"waiting for topics to be created", "topic spanpipe.drops does not exist"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := start(t, "drops", "tail", "--brokers", tc.brokers(t), "--connect-timeout", "2s")
			if code := p.wait(t, 30*time.Second); code != 1 {
				t.Fatalf("exit status %d, want 1; stderr:\n%s", code, p.stderrText())
			}
			for _, w := range tc.want {
				if !strings.Contains(p.stderrText(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, p.stderrText())
				}
			}
		})
	}
}
