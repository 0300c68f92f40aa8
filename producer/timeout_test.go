package producer_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/internal/kafkatest"
	"github.com/spanpipe/spanpipe/producer"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestDeliveryTimeoutFailsRecordsInFlight: a broker that took a produce request and
// never answers (it went away mid-request) does not hold records past
// DeliveryTimeout. kgo used to refuse to fail an idempotent record whose request was
// written, so a load generator sat 14 minutes on a stopped broker.
func TestDeliveryTimeoutFailsRecordsInFlight(t *testing.T) {
	c := kafkatest.Cluster(t, 1, "spanpipe.spans", "spanpipe.drops")
	hold := make(chan struct{})
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		c.SleepControl(func() { <-hold })
		return nil, nil, false
	})
	cfg := producer.DefaultConfig()
	cfg.Brokers, cfg.ServiceName = c.ListenAddrs(), "timeout-test"
	cfg.DeliveryTimeout = 2 * time.Second
	cfg.DropReportInterval = time.Hour
	var failed atomic.Int64
	// Short request timeouts: the request nobody answers ends in seconds, not kgo's 20.
	p, err := producer.New(cfg, producer.WithOnDrop(func(d producer.Drop) { failed.Add(1) }),
		producer.WithKgoOpts(kgo.ProduceRequestTimeout(time.Second), kgo.RequestTimeoutOverhead(time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	sp := p.StartSpan(producer.SpanOptions{Name: "run", Type: schema.AgentRun})
	sp.End(producer.EndOptions{})
	began := time.Now()
	kafkatest.Eventually(t, 30*time.Second, "both events failed", func() bool { return failed.Load() == 2 })
	// A request nobody answers fails its records when it times out (kgo's produce
	// request timeout plus overhead, 20 s by default), not at DeliveryTimeout itself.
	t.Logf("failed after %s", time.Since(began).Round(time.Millisecond))
	close(hold)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = p.Close(ctx)
}
