package clientmatrix_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"clamgate/internal/testenv"
)

// clamdscanClient runs ClamAV's own clamdscan in each of its modes.
func clamdscanClient() client {
	return client{
		name: "clamdscan", source: "Debian clamdscan",
		prepare: func(t *testing.T) {
			t.Helper()
			if _, err := exec.LookPath("clamdscan"); err != nil {
				t.Fatal("clamdscan is not installed: apt-get install clamdscan")
			}
		},
		drive: driveClamdscan,
	}
}

// clamdscanRun is one operation: its arguments and what it reads on stdin.
type clamdscanRun struct {
	op    string
	args  []string
	stdin string // a file of the plan, or ""
}

func clamdscanRuns(f map[string]string) []clamdscanRun {
	return []clamdscanRun{
		{"ping", []string{"--ping", "1"}, ""},
		{"version", []string{"--version"}, ""},
		{"stream-clean", []string{"-"}, "clean"},
		{"stream-eicar", []string{"-"}, "eicar"},
		{"stream-empty", []string{"-"}, "empty"},
		{"stream-5mib", []string{"--stream", f["big"]}, ""},
		{"stream-over-limit", []string{"--stream", f["over"]}, ""},
		{"file-clean", []string{f["clean"]}, ""},
		{"file-eicar", []string{f["eicar"]}, ""},
		{"file-list", []string{f["eicar"], f["clean"]}, ""},
		{"dir-infected", []string{f["dir"]}, ""},
		{"dir-clean", []string{f["cleandir"]}, ""},
		{"multiscan", []string{"--multiscan", f["dir"]}, ""},
		{"allmatch", []string{"--allmatch", f["dir"]}, ""},
		{"fildes", []string{"--fdpass", f["dir"]}, ""},
		{"reload", []string{"--reload"}, ""},
	}
}

// summaryLine is what stays of clamdscan's summary: the counts a script
// reads. Times, dates and byte counts vary from run to run.
var summaryLine = regexp.MustCompile(`^(Infected files|Total errors): `)

func driveClamdscan(t *testing.T, s server, files map[string]string) map[string]result {
	t.Helper()
	conf := filepath.Join(testenv.TempDir(t), "clamd.conf")
	must(t, os.WriteFile(conf, []byte("LocalSocket "+s.unix+"\n"), 0o644))
	out := map[string]result{}
	for _, r := range clamdscanRuns(files) {
		args := append([]string{"--config-file=" + conf}, r.args...)
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		cmd := exec.CommandContext(ctx, "clamdscan", args...)
		cmd.Env = driverEnv()
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if r.stdin != "" {
			f, err := os.Open(files[r.stdin])
			must(t, err)
			cmd.Stdin = f
			defer f.Close()
		}
		err := cmd.Run()
		timedOut := ctx.Err() != nil
		cancel()
		code := 0
		var ee *exec.ExitError
		switch {
		case timedOut:
			out[r.op] = result{Call: callName(r), Error: "no answer within " + opTimeout.String(), Verdict: "error"}
			continue
		case errors.As(err, &ee):
			code = ee.ExitCode()
		case err != nil:
			t.Fatalf("clamdscan %v: %v", args, err)
		}
		value, _ := json.Marshal(map[string]any{"exit": code, "stdout": keptLines(stdout.String()), "stderr": keptLines(stderr.String())})
		out[r.op] = result{Call: callName(r), Value: value, Verdict: clamdscanVerdict(r.op, code)}
	}
	return out
}

// callName is how the table names a clamdscan run.
func callName(r clamdscanRun) string {
	switch {
	case r.stdin != "":
		return "clamdscan -"
	case strings.HasPrefix(r.args[0], "--"):
		return "clamdscan " + r.args[0]
	}
	return "clamdscan"
}

// clamdscanVerdict reads the exit code as scripts do: 0 clean, 1 virus
// found, anything else an error.
func clamdscanVerdict(op string, code int) string {
	switch {
	case code != 0 && code != 1:
		return "error"
	case op == "ping" || op == "version" || op == "reload":
		return ""
	case code == 1:
		return "infected"
	}
	return "clean"
}

// keptLines are the lines of clamdscan's output that say something about
// the scan, sorted (MULTISCAN's order is clamd's threads').
func keptLines(s string) []string {
	var kept []string
	summary := false
	for line := range strings.Lines(s) {
		line = strings.TrimRight(line, "\n")
		if strings.Contains(line, "SCAN SUMMARY") {
			summary = true
			continue
		}
		if line == "" || (summary && !summaryLine.MatchString(line)) {
			continue
		}
		kept = append(kept, line)
	}
	sort.Strings(kept)
	return kept
}
