package cli

import (
	"bytes"
	"context"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"clamgate/internal/testenv"
)

// TestConfigCheckGolden runs `clamgate config check` on a good file (a real
// clamd answering), a file with value errors, and one whose problems only
// the host shows: each error as file:line: key: message, in line order.
func TestConfigCheckGolden(t *testing.T) {
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	dir := testenv.TempDir(t)
	for _, d := range []string{"run", "spool", "public"} {
		must(t, os.Mkdir(filepath.Join(dir, d), 0o755))
	}
	must(t, os.Chmod(filepath.Join(dir, "public"), 0o777))
	must(t, os.WriteFile(filepath.Join(dir, "spool", "file.txt"), nil, 0o644))
	for _, name := range []string{"good", "syntax", "host"} {
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join("testdata", "config", name+".toml"))
			must(t, err)
			text := strings.NewReplacer("$CLAMD", clamd.Socket, "$DIR", dir).Replace(string(src))
			path := filepath.Join(dir, name+".toml")
			must(t, os.WriteFile(path, []byte(text), 0o644))
			var out bytes.Buffer
			code := Main(context.Background(), []string{"config", "check", "--config", path}, &out, &out)
			got := strings.NewReplacer(clamd.Socket, "$CLAMD", dir, "$DIR").Replace(out.String())
			got = "exit " + strconv.Itoa(code) + "\n" + got
			golden := filepath.Join("testdata", "config", name+".golden")
			if *updateGolden {
				must(t, os.WriteFile(golden, []byte(got), 0o644))
			}
			want, err := os.ReadFile(golden)
			must(t, err)
			if got != string(want) {
				t.Errorf("config check output differs from %s (go test -run TestConfigCheckGolden -update-golden):\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

// TestConfigShowLoads: what `config show` prints, for an external clamd
// and for a managed one, holds effective values only (no ” or 0 standing
// for "unset") and is accepted by `config check --offline`.
func TestConfigShowLoads(t *testing.T) {
	dir := testenv.TempDir(t)
	listener := "[[listener]]\naddress = \"tcp:127.0.0.1:3310\"\npolicy = \"p\"\n[policy.p]\n"
	for name, src := range map[string]string{
		"backend": "[backend]\naddress = \"unix:/run/clamav/clamd.sock\"\n" + listener,
		"engine":  "[engine]\n" + listener,
	} {
		in, shown := filepath.Join(dir, name+".toml"), filepath.Join(dir, name+"-shown.toml")
		must(t, os.WriteFile(in, []byte(src), 0o644))
		var out, errb bytes.Buffer
		if code := Main(context.Background(), []string{"config", "show", "--config", in}, &out, &errb); code != 0 {
			t.Fatalf("%s: config show: %d %s", name, code, errb.String())
		}
		for _, key := range []string{"max_queue = 64", "read_timeout = '2m0s'", "weight = 1"} {
			if !strings.Contains(out.String(), key) {
				t.Errorf("%s: config show lacks %q:\n%s", name, key, out.String())
			}
		}
		if m := regexp.MustCompile(`(?m)^.*= (''|'0'|\[\])$`).FindAllString(out.String(), -1); len(m) > 0 {
			t.Errorf("%s: config show prints placeholders, not effective values: %q", name, m)
		}
		must(t, os.WriteFile(shown, out.Bytes(), 0o644))
		errb.Reset()
		if code := Main(context.Background(), []string{"config", "check", "--offline", "--config", shown}, &out, &errb); code != 0 {
			t.Errorf("%s: config check of the shown file: %d %s", name, code, errb.String())
		}
	}
}

// TestOfflineUnknownUser: the file is data, so `config check --offline`
// accepts one naming users and groups this host lacks (it may be written
// for another host); without --offline, the host check names each one as
// file:line: key:, and so does serve.
func TestOfflineUnknownUser(t *testing.T) {
	if _, err := user.Lookup(unknownUser); err == nil {
		t.Fatalf("user %s exists here", unknownUser)
	}
	dir := testenv.TempDir(t)
	path := filepath.Join(dir, "clamgate.toml")
	src := "[backend]\naddress = \"unix:/run/clamav/clamd.sock\"\n[[listener]]\naddress = \"unix:" + dir + "/clamd.sock\"\npolicy = \"p\"\n" +
		"owner = \"" + unknownUser + "\"\n[policy.p]\nusers = [\"" + unknownUser + "\", \"0\"]\ngroups = [\"" + unknownUser + "\"]\n"
	must(t, os.WriteFile(path, []byte(src), 0o644))
	var out bytes.Buffer
	if code := Main(context.Background(), []string{"config", "check", "--offline", "--config", path}, &out, &out); code != 0 {
		t.Errorf("--offline: exit %d\n%s", code, out.String())
	}
	out.Reset()
	code := Main(context.Background(), []string{"config", "check", "--config", path, "--timeout", "100ms"}, &out, &out)
	for _, want := range []string{
		path + ":6: listener[0].owner: unknown user \"" + unknownUser + "\"",
		path + ":8: policy.p.users: unknown user \"" + unknownUser + "\"",
		path + ":9: policy.p.groups: unknown group \"" + unknownUser + "\"",
	} {
		if code != exitConfig || !strings.Contains(out.String(), want+"\n") {
			t.Errorf("config check: exit %d, want %d and %q in:\n%s", code, exitConfig, want, out.String())
		}
	}
}

// TestRenamedKeysWarnInCheck: config check accepts a file with renamed
// keys, and prints a warning naming the new key at each old one's line.
func TestRenamedKeysWarnInCheck(t *testing.T) {
	dir := testenv.TempDir(t)
	path := filepath.Join(dir, "old.toml")
	src := "[backend]\naddress = \"unix:/run/clamav/clamd.sock\"\n[[listener]]\naddress = \"tcp:127.0.0.1:3310\"\npolicy = \"p\"\n[policy.p]\nmax_stream = \"10M\"\n"
	must(t, os.WriteFile(path, []byte(src), 0o644))
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"config", "check", "--offline", "--config", path}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if want := path + ":7: policy.p.max_stream: warning: renamed policy.p.max_object"; !strings.HasPrefix(errb.String(), want) {
		t.Errorf("stderr %q, want %q...", errb.String(), want)
	}
}

// TestServeDefaultConfig: serve without flags reads the file config check
// and doctor read by default.
func TestServeDefaultConfig(t *testing.T) {
	if _, err := os.Stat("/etc/clamgate/clamgate.toml"); err == nil {
		t.Skip("/etc/clamgate/clamgate.toml exists here: serve would start")
	}
	var out bytes.Buffer
	if code := Main(context.Background(), []string{"serve"}, &out, &out); code != exitConfig || !strings.Contains(out.String(), "/etc/clamgate/clamgate.toml") {
		t.Errorf("serve without flags: exit %d\n%s", code, out.String())
	}
}
