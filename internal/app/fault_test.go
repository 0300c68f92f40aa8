package app

import (
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
