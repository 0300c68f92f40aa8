//go:build !spanpipe_fault

package app

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// A release build (no spanpipe_fault tag) must not be armable from outside: the
// variable is ignored, and the log says so.
func TestReleaseBuildIgnoresTheFaultFile(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	if hook := FaultInjector([]string{FaultFileEnv + "=/tmp/sink.fault"}, log); hook != nil {
		t.Fatal("FaultInjector returned a hook in a build without the spanpipe_fault tag")
	}
	if !strings.Contains(buf.String(), "level=WARN") || !strings.Contains(buf.String(), FaultFileEnv) {
		t.Errorf("no warning naming %s in the log: %q", FaultFileEnv, buf.String())
	}
	buf.Reset()
	if hook := FaultInjector([]string{"HOME=/root"}, log); hook != nil || buf.Len() != 0 {
		t.Errorf("without the variable: hook %v, log %q; want no hook and no log", hook != nil, buf.String())
	}
}
