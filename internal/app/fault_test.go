package app

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/spanpipe/spanpipe/pipeline"
)

func TestFaultInjectorUnsetInstallsNoHook(t *testing.T) {
	for _, env := range [][]string{nil, {"HOME=/root"}, {FaultFileEnv + "="}} {
		if FaultInjector(env, nil) != nil {
			t.Errorf("FaultInjector(%q) returned a hook, want nil", env)
		}
	}
}

func TestFaultInjectorFailsWhileTheFileExists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "down")
	hook := FaultInjector([]string{FaultFileEnv + "=" + path}, nil)
	if hook == nil {
		t.Fatal("FaultInjector returned nil with the variable set")
	}
	check := func(what string, wantFault bool) {
		t.Helper()
		err := hook(t.Context(), &pipeline.Batch{})
		if got := errors.Is(err, ErrInjectedFault); got != wantFault {
			t.Fatalf("%s: hook returned %v, want injected fault %v", what, err, wantFault)
		}
		if errors.Is(err, pipeline.ErrPermanent) {
			t.Fatalf("%s: hook returned a permanent error %v, want a retryable one", what, err)
		}
	}
	check("no file yet", false)
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	check("file created", true)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	check("file removed", false)
}

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
