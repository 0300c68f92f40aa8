package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
)

const completionHelp = `usage: spanpipe completion bash|zsh|fish

Prints a completion script for the shell: subcommands, and the flags of each.
  bash:  source <(spanpipe completion bash)      (or save it in /etc/bash_completion.d/spanpipe)
  zsh:   source <(spanpipe completion zsh)       (or save it as _spanpipe in a directory of $fpath)
  fish:  spanpipe completion fish > ~/.config/fish/completions/spanpipe.fish
`

// completionFunc is set in init: completion reads commands, which lists it, and Go
// forbids that cycle in package initialization.
var completionFunc func(context.Context, []string) error

func init() { completionFunc = completion }

func runCompletion(ctx context.Context, args []string) error { return completionFunc(ctx, args) }

func completion(ctx context.Context, args []string) error {
	if len(args) != 1 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(os.Stderr, completionHelp)
		if len(args) == 1 {
			return exitError{0, flag.ErrHelp}
		}
		return exitError{2, errors.New("completion: want one shell: bash, zsh or fish")}
	}
	var gen func([]compCommand) string
	switch args[0] {
	case "bash":
		gen = bashCompletion
	case "zsh":
		gen = zshCompletion
	case "fish":
		gen = fishCompletion
	default:
		return exitError{2, fmt.Errorf("completion: unknown shell %q; want bash, zsh or fish", args[0])}
	}
	cmds, err := completionCommands(ctx)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, gen(cmds))
	return nil
}

// compCommand is a command (or a command's subcommand, named "topics create") with
// its flags, as shells complete them.
type compCommand struct {
	name, summary string
	subs          []string
	flags         []compFlag
}

type compFlag struct {
	name, usage string
	value       bool // takes a value (not a bool flag)
}

// completionCommands asks each command for its flags the way a user does, with -h:
// the flag sets live inside the commands, and their help is the one list of flags.
func completionCommands(ctx context.Context) ([]compCommand, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("completion: find the spanpipe binary: %w", err)
	}
	var out []compCommand
	for _, c := range commands {
		cc := compCommand{name: c.name, summary: c.summary}
		if c.run == nil || c.name == "completion" {
			cc.subs = c.subs
			out = append(out, cc)
			continue
		}
		if len(c.subs) > 0 {
			cc.subs = c.subs
			out = append(out, cc)
			for _, s := range c.subs {
				flags, err := helpFlags(ctx, self, c.name, s)
				if err != nil {
					return nil, err
				}
				out = append(out, compCommand{name: c.name + " " + s, flags: flags})
			}
			continue
		}
		if cc.flags, err = helpFlags(ctx, self, c.name); err != nil {
			return nil, err
		}
		out = append(out, cc)
	}
	return out, nil
}

// flagLine is how flag.PrintDefaults starts a flag: "  -name" and maybe its value
// type; the usage follows on the next line.
var flagLine = regexp.MustCompile(`^  -([A-Za-z0-9][A-Za-z0-9_-]*)( .*)?$`)

func helpFlags(ctx context.Context, self string, args ...string) ([]compFlag, error) {
	cmd := exec.CommandContext(ctx, self, append(args, "-h")...)
	var help bytes.Buffer
	cmd.Stdout, cmd.Stderr = &help, &help
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("completion: spanpipe %s -h: %w", strings.Join(args, " "), err)
	}
	lines := strings.Split(help.String(), "\n")
	var flags []compFlag
	for i, l := range lines {
		m := flagLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		usage := ""
		if i+1 < len(lines) {
			usage = strings.TrimSpace(lines[i+1])
		}
		if strings.HasPrefix(usage, "deprecated") {
			continue
		}
		if j := strings.Index(usage, " (default"); j > 0 {
			usage = usage[:j]
		}
		flags = append(flags, compFlag{m[1], usage, m[2] != ""})
	}
	return flags, nil
}

func names(cmds []compCommand) []string {
	var out []string
	for _, c := range cmds {
		if !strings.Contains(c.name, " ") {
			out = append(out, c.name)
		}
	}
	return out
}

func flagNames(c compCommand) string {
	var out []string
	for _, f := range c.flags {
		out = append(out, "--"+f.name)
	}
	return strings.Join(out, " ")
}

func bashCompletion(cmds []compCommand) string {
	var b strings.Builder
	b.WriteString(`# bash completion for spanpipe: source <(spanpipe completion bash)
_spanpipe() {
    local cur=${COMP_WORDS[COMP_CWORD]} cmd=${COMP_WORDS[1]} sub=${COMP_WORDS[2]} subs="" flags=""
    if [[ $COMP_CWORD -eq 1 ]]; then
        COMPREPLY=($(compgen -W "` + strings.Join(names(cmds), " ") + `" -- "$cur"))
        return
    fi
    case "$cmd" in
`)
	for _, c := range cmds {
		if strings.Contains(c.name, " ") {
			continue
		}
		fmt.Fprintf(&b, "    %s)\n", c.name)
		if len(c.subs) > 0 {
			fmt.Fprintf(&b, "        subs=%q\n        case \"$sub\" in\n", strings.Join(c.subs, " "))
			for _, s := range cmds {
				if parent, sub, ok := strings.Cut(s.name, " "); ok && parent == c.name {
					fmt.Fprintf(&b, "        %s) flags=%q ;;\n", sub, flagNames(s))
				}
			}
			b.WriteString("        esac ;;\n")
			continue
		}
		fmt.Fprintf(&b, "        flags=%q ;;\n", flagNames(c))
	}
	b.WriteString(`    esac
    if [[ -n $subs && $COMP_CWORD -eq 2 ]]; then
        COMPREPLY=($(compgen -W "$subs" -- "$cur"))
    elif [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}
complete -o default -F _spanpipe spanpipe
`)
	return b.String()
}

// zshQuote quotes s for a single-quoted zsh word, and escapes the colon that
// _describe reads as the end of a name.
func zshQuote(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, "'", `'\''`), ":", `\:`) + "'"
}

func zshCompletion(cmds []compCommand) string {
	var b strings.Builder
	b.WriteString("#compdef spanpipe\n# zsh completion for spanpipe: source <(spanpipe completion zsh), or save as _spanpipe in $fpath\n_spanpipe() {\n    local -a items\n    if (( CURRENT == 2 )); then\n        items=(\n")
	for _, c := range cmds {
		if !strings.Contains(c.name, " ") {
			fmt.Fprintf(&b, "            '%s:%s\n", c.name, strings.TrimPrefix(zshQuote(c.summary), "'"))
		}
	}
	b.WriteString("        )\n        _describe 'command' items\n        return\n    fi\n    case \"$words[2]\" in\n")
	for _, c := range cmds {
		if strings.Contains(c.name, " ") {
			continue
		}
		fmt.Fprintf(&b, "    %s)\n", c.name)
		if len(c.subs) > 0 {
			fmt.Fprintf(&b, "        if (( CURRENT == 3 )); then compadd -- %s; return; fi\n        case \"$words[3]\" in\n", strings.Join(c.subs, " "))
			for _, s := range cmds {
				if parent, sub, ok := strings.Cut(s.name, " "); ok && parent == c.name {
					fmt.Fprintf(&b, "        %s) items=(%s) ;;\n", sub, zshFlags(s))
				}
			}
			b.WriteString("        esac ;;\n")
			continue
		}
		fmt.Fprintf(&b, "        items=(%s) ;;\n", zshFlags(c))
	}
	b.WriteString(`    esac
    if [[ $PREFIX == -* ]]; then
        _describe 'flag' items
    else
        _files
    fi
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    _spanpipe "$@"
else
    compdef _spanpipe spanpipe
fi
`)
	return b.String()
}

func zshFlags(c compCommand) string {
	var out []string
	for _, f := range c.flags {
		out = append(out, "'--"+f.name+":"+strings.TrimPrefix(zshQuote(f.usage), "'"))
	}
	return strings.Join(out, " ")
}

func fishQuote(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
}

func fishCompletion(cmds []compCommand) string {
	var b strings.Builder
	b.WriteString("# fish completion for spanpipe: spanpipe completion fish > ~/.config/fish/completions/spanpipe.fish\ncomplete -c spanpipe -f\n")
	for _, c := range cmds {
		if !strings.Contains(c.name, " ") {
			fmt.Fprintf(&b, "complete -c spanpipe -n __fish_use_subcommand -a %s -d %s\n", c.name, fishQuote(c.summary))
		}
	}
	for _, c := range cmds {
		cond := "__fish_seen_subcommand_from " + c.name
		if parent, sub, ok := strings.Cut(c.name, " "); ok {
			cond = "__fish_seen_subcommand_from " + parent + "; and __fish_seen_subcommand_from " + sub
		} else if len(c.subs) > 0 {
			fmt.Fprintf(&b, "complete -c spanpipe -n %s -a %s\n", fishQuote(cond+"; and not __fish_seen_subcommand_from "+strings.Join(c.subs, " ")),
				fishQuote(strings.Join(c.subs, " ")))
			continue
		}
		for _, f := range c.flags {
			value := ""
			if f.value {
				value = " -r -F"
			}
			fmt.Fprintf(&b, "complete -c spanpipe -n %s -l %s -d %s%s\n", fishQuote(cond), f.name, fishQuote(f.usage), value)
		}
	}
	return b.String()
}
