package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCompletionBash loads `spanpipe completion bash` into a real bash and asks it
// what a user's Tab would offer.
func TestCompletionBash(t *testing.T) {
	script, stderr, code := spanpipe(t, nil, "completion", "bash")
	if code != 0 {
		t.Fatalf("completion bash: exit %d: %s", code, stderr)
	}
	path := filepath.Join(t.TempDir(), "spanpipe.bash")
	os.WriteFile(path, []byte(script), 0o644)
	tests := []struct {
		line string // the words typed, the last one being completed
		want []string
		not  []string
	}{
		{"spanpipe to", []string{"topics"}, []string{"trace"}},
		{"spanpipe ", []string{"dev", "consume", "produce", "topics", "offsets", "completion", "version"}, nil},
		{"spanpipe topics ", []string{"create", "describe"}, nil},
		{"spanpipe topics create --p", []string{"--partitions"}, []string{"--group"}},
		{"spanpipe offsets skip --to", []string{"--to-offset", "--topic"}, nil},
		{"spanpipe consume --log", []string{"--log-level", "--log-format"}, nil},
		{"spanpipe drops tail --d", []string{"--dead-letters", "--drop-topic"}, []string{"--topic"}},
		{"spanpipe replay --dead", []string{"--dead-letter-topic"}, []string{"--deadletter-topic"}},
		{"spanpipe completion ", []string{"bash", "zsh", "fish"}, nil},
	}
	for _, tt := range tests {
		words := strings.Fields(tt.line)
		if strings.HasSuffix(tt.line, " ") {
			words = append(words, "")
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + w + "'"
		}
		prog := "source " + path + "; COMP_WORDS=(" + strings.Join(quoted, " ") + "); COMP_CWORD=" + itoa(int64(len(words)-1)) +
			"; _spanpipe; printf '%s\\n' \"${COMPREPLY[@]}\""
		out, err := exec.Command("bash", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("%q: bash: %v\n%s", tt.line, err, out)
		}
		got := strings.Fields(string(out))
		for _, w := range tt.want {
			if !slices.Contains(got, w) {
				t.Errorf("%q offers %v, want %s among them", tt.line, got, w)
			}
		}
		for _, w := range tt.not {
			if slices.Contains(got, w) {
				t.Errorf("%q offers %v, want no %s", tt.line, got, w)
			}
		}
	}
}

// TestCompletionZshFish: the zsh and fish scripts cover the same commands and
// flags (no zsh or fish on the test machine to run them in).
func TestCompletionZshFish(t *testing.T) {
	zsh, _, code := spanpipe(t, nil, "completion", "zsh")
	if code != 0 || !strings.HasPrefix(zsh, "#compdef spanpipe\n") {
		t.Fatalf("completion zsh: exit %d:\n%s", code, zsh)
	}
	fish, _, code := spanpipe(t, nil, "completion", "fish")
	if code != 0 {
		t.Fatalf("completion fish: exit %d", code)
	}
	for _, want := range []string{"'topics:create or describe", "create) items=('--brokers:seed brokers", "'--partitions:partitions of a spans topic",
		"'--log-level:debug, info, warn or error (log.level)'", "compdef _spanpipe spanpipe"} {
		if !strings.Contains(zsh, want) {
			t.Errorf("zsh script lacks %q", want)
		}
	}
	for _, want := range []string{
		"complete -c spanpipe -n __fish_use_subcommand -a topics -d 'create or describe",
		"complete -c spanpipe -n '__fish_seen_subcommand_from topics; and not __fish_seen_subcommand_from create describe' -a 'create describe'",
		"complete -c spanpipe -n '__fish_seen_subcommand_from topics; and __fish_seen_subcommand_from create' -l partitions -d 'partitions of a spans topic (overrides topics.partitions)' -r -F",
		"complete -c spanpipe -n '__fish_seen_subcommand_from consume' -l check -d 'validate the config, sink included, and exit without connecting'\n",
	} {
		if !strings.Contains(fish, want) {
			t.Errorf("fish script lacks %q", want)
		}
	}
	if _, stderr, code := spanpipe(t, nil, "completion", "tcsh"); code != 2 || !strings.Contains(stderr, "bash, zsh or fish") {
		t.Errorf("completion tcsh: exit %d, %s", code, stderr)
	}
}
