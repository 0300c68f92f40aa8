//go:build spanpipe_fault

package app

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/pipeline"
)

func TestFaultInjectorUnsetInstallsNoHook(t *testing.T) {
	for _, env := range [][]string{nil, {"HOME=/root"}, {FaultFileEnv + "="}} {
		if FaultInjector(env, nil) != nil {
			t.Errorf("FaultInjector(%q) returned a hook, want nil", env)
		}
	}
}

// The file's content selects the fault; no file, no fault.
func TestFaultInjectorModes(t *testing.T) {
	for _, tc := range []struct {
		content                       string // "" with noFile: the file does not exist
		noFile                        bool
		fault, permanent, unavailable bool
	}{
		{noFile: true},
		{content: "error\n", fault: true},
		{content: "down\n", fault: true},
		{content: "", fault: true},
		{content: " reject\n", fault: true, permanent: true},
		{content: "unavailable", fault: true, unavailable: true},
	} {
		path := filepath.Join(t.TempDir(), "sink.fault")
		if !tc.noFile {
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		err := FaultInjector([]string{FaultFileEnv + "=" + path}, nil)(t.Context(), &pipeline.Batch{})
		if errors.Is(err, ErrInjectedFault) != tc.fault || errors.Is(err, pipeline.ErrPermanent) != tc.permanent ||
			errors.Is(err, pipeline.ErrUnavailable) != tc.unavailable {
			t.Errorf("file %q (exists %v): hook returned %v; want fault %v, permanent %v, unavailable %v",
				tc.content, !tc.noFile, err, tc.fault, tc.permanent, tc.unavailable)
		}
	}
}

// hang blocks a write until the file is removed (the write then goes through) or the
// write's context ends (the write fails).
func TestFaultInjectorHang(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sink.fault")
	hook := FaultInjector([]string{FaultFileEnv + "=" + path}, nil)
	start := func(ctx context.Context) <-chan error {
		done := make(chan error, 1)
		go func() { done <- hook(ctx, &pipeline.Batch{}) }()
		return done
	}
	if err := os.WriteFile(path, []byte("hang\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	released := start(t.Context())
	select {
	case err := <-released:
		t.Fatalf("the write returned %v while the file says hang", err)
	case <-time.After(5 * faultPoll):
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-released:
		if err != nil {
			t.Fatalf("after the file was removed the write failed: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the write still hangs a minute after the file was removed")
	}

	if err := os.WriteFile(path, []byte("hang\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancelled := start(ctx)
	cancel()
	select {
	case err := <-cancelled:
		if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrInjectedFault) || errors.Is(err, pipeline.ErrPermanent) {
			t.Fatalf("a hung write whose context ended returned %v, want a retryable injected fault wrapping context.Canceled", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a hung write did not return a minute after its context ended")
	}
}
