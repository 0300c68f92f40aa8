package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spanpipe/spanpipe/internal/backoff"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// brokerWatch is a franz-go hook that names broker connection problems as they
// happen. The client retries quietly, so without it a user facing a stopped or
// mistyped broker saw minutes of silence, never "connection refused".
type brokerWatch struct {
	log *slog.Logger

	mu      sync.Mutex
	problem string // the last failure to connect; "" once a connection succeeds
	said    time.Time
}

// repeatProblemEvery is how often a problem that persists is said again.
const repeatProblemEvery = 30 * time.Second

func newBrokerWatch(log *slog.Logger) *brokerWatch { return &brokerWatch{log: log} }

// OnBrokerConnect implements kgo.HookBrokerConnect.
func (w *brokerWatch) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	addr := net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port)))
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		if w.problem != "" {
			w.log.Info("connected to Kafka broker", "addr", addr)
			w.problem = ""
		}
		return
	}
	// A dial our own shutdown cancelled says nothing about the broker.
	if errors.Is(err, context.Canceled) {
		return
	}
	// A dial cut short by the caller's deadline says "i/o timeout": it must not hide
	// the reason the broker could not be reached before ("connection refused").
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && w.problem != "" && time.Since(w.said) < repeatProblemEvery {
		return
	}
	msg := err.Error()
	if msg != w.problem || time.Since(w.said) >= repeatProblemEvery {
		w.log.Warn("cannot reach Kafka broker", "addr", addr, "err", msg)
		w.said = time.Now()
	}
	w.problem = msg
}

// Problem is the last connection failure, or "" when the last connection worked.
func (w *brokerWatch) Problem() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.problem
}

// awaitKafka waits up to timeout until a broker answers metadata for topics. A broker
// nobody can reach is an error naming why, after timeout. Topics that do not exist
// are waited for (and said at WARN) when waitTopics; otherwise they are returned
// at once, for a caller that can wait on its own (a consumer: a producer may create
// them). A cancelled ctx returns ctx.Err().
func awaitKafka(ctx context.Context, cl *kgo.Client, w *brokerWatch, brokers, topics []string, timeout time.Duration, waitTopics bool) (missing []string, err error) {
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(timeout)
	var warned []string
	for {
		try := time.Now().Add(5 * time.Second)
		if deadline.Before(try) {
			try = deadline
		}
		actx, cancel := context.WithDeadline(ctx, try)
		md, err := adm.Metadata(actx, topics...)
		cancel()
		reached := err == nil
		missing = missing[:0]
		if reached {
			for _, t := range topics {
				if d, ok := md.Topics[t]; !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
					missing = append(missing, t)
				}
			}
			if len(missing) == 0 || !waitTopics {
				return missing, nil
			}
			if !slices.Equal(missing, warned) {
				w.log.Warn("waiting for topics to be created", "topics", strings.Join(missing, ","), "timeout", timeout)
				warned = slices.Clone(missing)
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !time.Now().Before(deadline) {
			if reached {
				return missing, fmt.Errorf("topic %s does not exist (waited %s)", strings.Join(missing, ", "), timeout)
			}
			why := w.Problem()
			if why == "" && err != nil {
				why = err.Error()
			}
			return nil, fmt.Errorf("no Kafka broker reachable at %s within %s: %s", strings.Join(brokers, ","), timeout, why)
		}
		if err := backoff.Sleep(ctx, time.Second); err != nil {
			return nil, err
		}
	}
}
