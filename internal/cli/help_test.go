package cli

import (
	"bytes"
	"context"
	"io"
	"maps"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"clamgate/internal/config"
)

// TestHelpAgrees: every command Main dispatches is documented and every
// documented one dispatches; -h and --help on each command and subcommand
// print its usage on stdout and exit 0; and the flags its -h lists are the
// ones the top usage and clamgate(8) name for it.
func TestHelpAgrees(t *testing.T) {
	ctx := context.Background()
	var documented []string
	for _, c := range manualCommands {
		documented = append(documented, c.args[0])
	}
	for name := range commands() {
		if !slices.Contains(documented, name) {
			t.Errorf("command %q is not in manualCommands (clamgate(8), the top usage)", name)
		}
	}
	for _, name := range documented {
		if _, ok := commands()[name]; !ok {
			t.Errorf("manualCommands documents %q, which Main does not run", name)
		}
	}
	top := help(t, "--help")
	if top != help(t, "-h") || top != help(t, "help") {
		t.Errorf("clamgate --help, -h and help differ")
	}
	page := commandPage(ctx).Render()
	for _, c := range manualCommands {
		want := flagNames(help(t, append(c.args, "--help")...))
		if got := flagNames(help(t, append(c.args, "-h")...)); !slices.Equal(got, want) {
			t.Errorf("%v: -h lists %v, --help %v", c.args, got, want)
		}
		if got := flagNames(help(t, append([]string{"help"}, c.args...)...)); !slices.Equal(got, want) {
			t.Errorf("%v: help %v lists %v, --help %v", c.args, c.args, got, want)
		}
		if got := flagNames(usageOf(top, c.args)); !slices.Equal(got, want) {
			t.Errorf("%v: the top usage names %v, its --help %v", c.args, got, want)
		}
		for _, f := range want {
			if !strings.Contains(page, strings.ReplaceAll(f, "-", `\-`)) {
				t.Errorf("%v: clamgate(8) lacks %s", c.args, f)
			}
		}
	}
	var pages bytes.Buffer
	Main(ctx, []string{"manual", "5"}, &pages, io.Discard)
	pages.WriteString(page)
	for _, r := range config.Renamed {
		old, _, _ := strings.Cut(r.Old, `"`) // roff spells quotes \(dq
		if !strings.Contains(pages.String(), strings.ReplaceAll(old, "-", `\-`)) {
			t.Errorf("the man pages do not list the rename of %s", r.Old)
		}
	}
	for _, group := range []string{"deploy", "config"} {
		out := help(t, group, "--help")
		if out != help(t, group, "-h") {
			t.Errorf("%s -h and --help differ", group)
		}
		for _, c := range manualCommands {
			if c.args[0] == group && !strings.Contains(out, "clamgate "+strings.Join(c.args, " ")) {
				t.Errorf("%s --help lacks %v:\n%s", group, c.args, out)
			}
		}
	}
	if len(slices.Collect(maps.Keys(commands()))) < 8 {
		t.Errorf("fewer commands than clamgate has")
	}
}

// help runs clamgate with args, wants exit 0, usage on stdout and nothing
// on stderr, and returns stdout.
func help(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := Main(context.Background(), args, &out, &errb); code != 0 || errb.Len() > 0 || !strings.Contains(out.String(), "usage:") {
		t.Errorf("clamgate %s: exit %d, stdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out.String(), errb.String())
	}
	return out.String()
}

var flagRE = regexp.MustCompile(`(?m)(?:^  -|\[--)([a-z][a-z-]*)`)

// flagNames are the flags a usage text names, sorted and unique: "[--x"
// in a synopsis, "  -x" in the flag package's list. Old names of renamed
// flags (config.Renamed) are left out: the synopsis leaves them out.
func flagNames(text string) []string {
	var out []string
	for _, m := range flagRE.FindAllStringSubmatch(text, -1) {
		renamed := slices.ContainsFunc(config.Renamed, func(r config.Rename) bool { return strings.HasSuffix(r.Old, " --"+m[1]) })
		if !renamed {
			out = append(out, "--"+m[1])
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// usageOf is the synopsis of one command in the top usage, continuation
// lines included.
func usageOf(top string, args []string) string {
	prefix := "  clamgate " + strings.Join(args, " ")
	var b strings.Builder
	in := false
	for _, l := range strings.Split(top, "\n") {
		switch {
		case strings.HasPrefix(l, prefix+" ") || l == prefix:
			in = true
		case strings.HasPrefix(l, "  clamgate ") || l == "":
			in = false
		}
		if in {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// TestRenamedFlags: an old flag name still works, and says the new one.
func TestRenamedFlags(t *testing.T) {
	var out, errb bytes.Buffer
	Main(context.Background(), []string{"db", "--clamd", "unix:/nonexistent/clamd.sock", "--dir", t.TempDir(), "--json"}, &out, &errb)
	if !strings.Contains(errb.String(), "--clamd is renamed --address") || !strings.Contains(out.String(), "/nonexistent/clamd.sock") {
		t.Errorf("db --clamd: stdout %q stderr %q", out.String(), errb.String())
	}
}

// TestScanDefaultAddress: scan takes the first socket that exists.
func TestScanDefaultAddress(t *testing.T) {
	dir := t.TempDir()
	quick, deployed := "unix:"+filepath.Join(dir, "clamd.sock"), "unix:"+filepath.Join(dir, "local.sock")
	if got := defaultAddress(quick, deployed); got != quick {
		t.Errorf("neither exists: %s", got)
	}
	l, err := net.Listen("unix", strings.TrimPrefix(deployed, "unix:"))
	must(t, err)
	defer l.Close()
	if got := defaultAddress(quick, deployed); got != deployed {
		t.Errorf("only deploy's exists: %s", got)
	}
}
