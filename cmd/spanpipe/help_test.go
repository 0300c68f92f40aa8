package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// binary builds the spanpipe command once per test run, so that tests can meet the
// command line the way a user does: exit codes, stdout and stderr of a real process.
var binary = sync.OnceValues(func() (string, error) {
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

// TestHelpExitsZero: `spanpipe <command> -h` is a question, not a mistake: it prints
// the command's flags and exits 0 (it used to exit 2 with "flag: help requested").
func TestHelpExitsZero(t *testing.T) {
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"dev", "consume", "migrate", "trace", "produce", "alert", "drops", "replay", "bench", "healthcheck"} {
		t.Run(cmd, func(t *testing.T) {
			out, err := exec.Command(bin, cmd, "-h").CombinedOutput()
			if err != nil {
				t.Fatalf("spanpipe %s -h: %v\n%s", cmd, err, out)
			}
			if strings.Contains(string(out), "help requested") || !strings.Contains(string(out), "-") {
				t.Fatalf("spanpipe %s -h printed %q, want the flags and no error", cmd, out)
			}
		})
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
