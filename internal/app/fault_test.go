package app

import (
	"context"
	"errors"
	"testing"

	"github.com/spanpipe/spanpipe/pipeline"
)

// Tests of what every build has; fault_hook_test.go tests the hook itself (build tag
// spanpipe_fault), fault_release_test.go that a release build has none.

func TestFaultFileVariableIsNotAnUnknownSetting(t *testing.T) {
	if _, err := Load("", []string{FaultFileEnv + "=/tmp/x", "SPANPIPE_KAFKA_GROUP=g"}); err != nil {
		t.Fatalf("Load with %s set: %v, want no error", FaultFileEnv, err)
	}
}

type countingSink struct{ writes int }

func (s *countingSink) Name() string                        { return "counting" }
func (s *countingSink) Capabilities() pipeline.Capabilities { return pipeline.Capabilities{} }
func (s *countingSink) Write(context.Context, *pipeline.Batch) error {
	s.writes++
	return nil
}

func TestWithFaultBlocksWritesWhileTheHookFails(t *testing.T) {
	inner := &countingSink{}
	if got := WithFault(inner, nil); got != pipeline.Sink(inner) {
		t.Fatalf("WithFault(sink, nil) = %T, want the sink itself", got)
	}
	down := true
	outage := errors.New("outage")
	s := WithFault(inner, func(context.Context, *pipeline.Batch) error {
		if down {
			return outage
		}
		return nil
	})
	if err := s.Write(t.Context(), &pipeline.Batch{}); !errors.Is(err, outage) || inner.writes != 0 {
		t.Fatalf("during the outage: err %v, %d writes reached the sink; want the hook's error and none", err, inner.writes)
	}
	down = false
	if err := s.Write(t.Context(), &pipeline.Batch{}); err != nil || inner.writes != 1 {
		t.Fatalf("after the outage: err %v, %d writes; want nil and 1", err, inner.writes)
	}
	if s.Name() != "counting" {
		t.Errorf("Name() = %q: the wrapper must keep the sink's identity", s.Name())
	}
}
