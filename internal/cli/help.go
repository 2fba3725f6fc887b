package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// helpArgs are what asks a command for its usage.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "help"
}

// newFlags is a command's flag set; operands are what follows the flags
// in its synopsis ("PATH...|-"). Its usage is generated from the flags
// themselves, so that -h, the top usage and clamgate(8) cannot disagree.
func newFlags(name, operands string) *flag.FlagSet {
	fs := flag.NewFlagSet("clamgate "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s\n", wrap(synopsisOf(fs, operands)))
		if hasFlags(fs) {
			fmt.Fprintln(fs.Output(), "\nflags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses args. -h or --help prints the usage on stdout and
// ends the command with 0; a wrong flag prints the error and the usage on
// stderr and ends it with exitError. ok: run the command.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		_, _ = stdout.Write(buf.Bytes())
		return 0, false
	case err != nil:
		_, _ = stderr.Write(buf.Bytes())
		return exitError, false
	}
	return 0, true
}

// synopsisOf is "clamgate NAME [--flag VALUE]... OPERANDS". A flag's
// value is named by the back-quoted word of its usage, else by its type.
func synopsisOf(fs *flag.FlagSet, operands string) string {
	parts := []string{fs.Name()}
	fs.VisitAll(func(f *flag.Flag) {
		if strings.HasPrefix(f.Usage, "renamed --") {
			return // listed by -h and under RENAMED, not in the synopsis
		}
		value, _ := flag.UnquoteUsage(f)
		s := "--" + f.Name
		if value != "" {
			s += " " + strings.ToUpper(value)
		}
		s = "[" + s + "]"
		if _, repeat := f.Value.(*multi); repeat {
			s += "..."
		}
		parts = append(parts, s)
	})
	if operands != "" {
		parts = append(parts, operands)
	}
	return strings.Join(parts, " ")
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// wrap breaks a synopsis before a bracket past 100 columns, indenting the
// rest under the command's first flag.
func wrap(s string) string {
	words := strings.Split(s, " [")
	indent := strings.Repeat(" ", len(words[0])+1)
	var b strings.Builder
	line := words[0]
	for _, w := range words[1:] {
		if len(line)+len(w)+2 > 100 {
			b.WriteString(line + "\n")
			line = indent + "[" + w
			continue
		}
		line += " [" + w
	}
	b.WriteString(line)
	return b.String()
}

// groupUsage is the usage of a command made of subcommands (deploy,
// config): each subcommand's synopsis, read from its own -h.
func groupUsage(ctx context.Context, name string, subs []string) string {
	var b strings.Builder
	b.WriteString("usage:\n")
	for _, sub := range subs {
		b.WriteString(indentLines(firstUsage(ctx, name, sub), "  ") + "\n")
	}
	fmt.Fprintf(&b, "\nclamgate %s SUBCOMMAND --help prints a subcommand's flags.\n", name)
	return b.String()
}

// firstUsage is the synopsis a command prints for -h, without "usage: ".
func firstUsage(ctx context.Context, args ...string) string {
	var out bytes.Buffer
	Main(ctx, append(append([]string{}, args...), "-h"), &out, io.Discard)
	text, _, _ := strings.Cut(out.String(), "\n\n")
	return strings.TrimSuffix(strings.TrimPrefix(text, "usage: "), "\n")
}

func indentLines(s, in string) string {
	return in + strings.ReplaceAll(s, "\n", "\n"+in)
}

// topUsage lists every command's synopsis, read from its own -h.
func topUsage(ctx context.Context) string {
	var b strings.Builder
	b.WriteString("clamgate: one hardened clamd gateway for every local ClamAV client\n\nusage:\n")
	for _, c := range manualCommands {
		b.WriteString(indentLines(firstUsage(ctx, c.args...), "  ") + "\n")
	}
	b.WriteString("\nclamgate COMMAND --help prints a command's flags; man clamgate(8) and clamgate.toml(5) say more.\n")
	return b.String()
}
