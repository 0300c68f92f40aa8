package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// dockerStage is one FROM ... block of a Dockerfile, its instructions with line
// continuations joined.
type dockerStage struct {
	from, name string
	lines      []string // "INSTRUCTION args"
}

func parseDockerfile(t *testing.T, path string) (args map[string]string, stages []dockerStage) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	args = map[string]string{}
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		instr, rest, _ := strings.Cut(line, " ")
		switch strings.ToUpper(instr) {
		case "FROM":
			f := strings.Fields(rest)
			s := dockerStage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
			return
		case "ARG":
			if len(stages) == 0 {
				k, v, _ := strings.Cut(rest, "=")
				args[k] = v
			}
		}
		if len(stages) == 0 {
			return
		}
		stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, strings.ToUpper(instr)+" "+rest)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if c, ok := strings.CutSuffix(l, "\\"); ok {
			cur.WriteString(c + " ")
			continue
		}
		cur.WriteString(l)
		flush()
	}
	flush()
	return args, stages
}

var goBuildRE = regexp.MustCompile(`CGO_ENABLED=1 go build ([^&;]*?) -o (\S+) (\./cmd/spanpipe)`)

// TestDockerfile checks the Dockerfile without Docker: a cgo build stage on the Go
// version of go.mod, a glibc runtime stage that runs as a non-root user with the
// version labels, and its `go build` command, run here with the same flags, yields a
// binary whose `spanpipe version` names this checkout's commit (what the build's
// own check and the revision label rely on).
func TestDockerfile(t *testing.T) {
	args, stages := parseDockerfile(t, filepath.Join(repoRoot, "Dockerfile"))
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a build and a runtime stage", len(stages))
	}
	build, runtime := stages[0], stages[len(stages)-1]

	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	if goVersion == nil || args["GO_VERSION"] != string(goVersion[1]) {
		t.Errorf("ARG GO_VERSION=%s, want go.mod's %s", args["GO_VERSION"], goVersion)
	}
	if !strings.HasPrefix(build.from, "golang:${GO_VERSION}") {
		t.Errorf("build stage FROM %s, want golang:${GO_VERSION}-…", build.from)
	}
	var flags string
	for _, l := range build.lines {
		if m := goBuildRE.FindStringSubmatch(l); m != nil {
			flags = m[1]
		}
	}
	if flags == "" {
		t.Fatalf("no `CGO_ENABLED=1 go build … -o … ./cmd/spanpipe` in the build stage (DuckDB needs cgo)")
	}

	// The runtime: glibc + libstdc++ for DuckDB, a non-root user, the labels, the binary.
	if !strings.HasPrefix(runtime.from, "gcr.io/distroless/cc") {
		t.Errorf("runtime stage FROM %s, want gcr.io/distroless/cc (glibc and libstdc++ for DuckDB, nothing else)", runtime.from)
	}
	joined := strings.Join(runtime.lines, "\n")
	user := regexp.MustCompile(`(?m)^USER (\S+)`).FindStringSubmatch(joined)
	if user == nil || strings.HasPrefix(user[1], "0") || strings.HasPrefix(user[1], "root") {
		t.Errorf("runtime stage USER %v, want a non-root numeric user", user)
	}
	for _, want := range []string{`org.opencontainers.image.version="${VERSION}"`, `org.opencontainers.image.revision="${COMMIT}"`,
		"COPY --from=" + build.name + " /out/spanpipe /usr/local/bin/spanpipe", `ENTRYPOINT ["/usr/local/bin/spanpipe"]`} {
		if !strings.Contains(joined, want) {
			t.Errorf("runtime stage lacks %s", want)
		}
	}
	if !strings.Contains(strings.Join(build.lines, "\n"), `grep -q "commit $COMMIT"`) {
		t.Errorf("the build stage does not check that `spanpipe version` matches the COMMIT label")
	}

	// The same go build, here, through a shell as RUN's shell form does (the flags
	// are quoted for it).
	out := filepath.Join(t.TempDir(), "spanpipe")
	script := "CGO_ENABLED=1 go build " + flags + " -o \"$1\" ./cmd/spanpipe"
	cmd := exec.Command("sh", "-c", script, "sh", out)
	cmd.Dir = repoRoot
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, b)
	}
	v, err := exec.Command(out, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(v), "spanpipe ") {
		t.Fatalf("spanpipe version: %v\n%s", err, v)
	}
	// cmd/go stamps the commit only where .git is a directory (a clone, as in the
	// image build and CI), not in a `git worktree`, whose .git is a file.
	if fi, err := os.Stat(filepath.Join(repoRoot, ".git")); err != nil || !fi.IsDir() {
		t.Logf("%s/.git is not a directory (a worktree?): go build records no commit here, so it is not compared; version: %s", repoRoot, v)
		return
	}
	head, err := exec.Command("git", "-C", repoRoot, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD: %v", err)
	}
	if want := "commit " + strings.TrimSpace(string(head)); !strings.Contains(string(v), want) {
		t.Errorf("spanpipe version = %q, want it to contain %q (the Dockerfile's check and revision label)", v, want)
	}
}
