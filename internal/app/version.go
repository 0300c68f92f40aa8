package app

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Build describes the running binary, from what the Go toolchain embeds: the module
// version ("(devel)" for a plain go build in a checkout) and the VCS commit, when the
// binary was built from a git work tree.
type Build struct {
	Version   string
	Commit    string
	Modified  bool
	GoVersion string
}

// BuildInfo reads the binary's build information.
func BuildInfo() Build {
	b := Build{Version: "devel", Commit: "unknown", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		b.Version = v
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is the one line `spanpipe version` prints.
func (b Build) String() string {
	commit := b.Commit
	if b.Modified {
		commit += "-dirty"
	}
	return fmt.Sprintf("spanpipe %s (commit %s, %s)", b.Version, commit, b.GoVersion)
}
