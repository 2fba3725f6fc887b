package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"clamgate/internal/config"
	"clamgate/internal/testenv"
)

// TestScanCommand runs `clamgate scan` against a gateway in front of a real
// clamd: streamed, by descriptor and from standard input, with clamdscan's
// exit codes.
func TestScanCommand(t *testing.T) {
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	dir := testenv.TempDir(t)
	sock := filepath.Join(dir, "gw.sock")
	cfg, err := config.Parse("cli.toml", []byte(fmt.Sprintf(`
[backend]
address = "unix:%s"
[[listener]]
address = "unix:%s"
policy = "p"
[policy.p]
`, clamd.Socket, sock)))
	if err != nil {
		t.Fatal(err)
	}
	testenv.StartGateway(t, cfg)
	files := testenv.TempDir(t)
	clean, infected := filepath.Join(files, "clean.txt"), filepath.Join(files, "sub", "eicar.com")
	must(t, os.MkdirAll(filepath.Dir(infected), 0o755))
	must(t, os.WriteFile(clean, []byte("clean\n"), 0o644))
	must(t, os.WriteFile(infected, []byte(testenv.EICAR), 0o644))

	run := func(stdin string, args ...string) (int, string) {
		var out, errb bytes.Buffer
		old := os.Stdin
		if stdin != "" {
			r, w, _ := os.Pipe()
			go func() { w.WriteString(stdin); w.Close() }()
			os.Stdin = r
			defer func() { os.Stdin = old; r.Close() }()
		}
		code := Main(context.Background(), append([]string{"scan", "--address", "unix:" + sock}, args...), &out, &errb)
		return code, out.String() + errb.String()
	}
	for _, mode := range [][]string{nil, {"--fdpass"}} {
		if code, out := run("", append(mode, clean)...); code != 0 || out != clean+": OK\n" {
			t.Errorf("%v clean: %d %q", mode, code, out)
		}
		code, out := run("", append(mode, files)...)
		if code != 1 || !strings.Contains(out, infected+": "+testenv.EicarThreat+" FOUND\n") || !strings.Contains(out, clean+": OK\n") {
			t.Errorf("%v tree: %d %q", mode, code, out)
		}
		if code, out := run("", append(mode, "--quiet", files)...); code != 1 || strings.Contains(out, "OK") {
			t.Errorf("%v --quiet: %d %q", mode, code, out)
		}
	}
	if code, out := run(testenv.EICAR, "-"); code != 1 || out != "stdin: "+testenv.EicarThreat+" FOUND\n" {
		t.Errorf("stdin: %d %q", code, out)
	}
	if code, out := run("", filepath.Join(files, "missing")); code != 2 || !strings.Contains(out, "ERROR") {
		t.Errorf("missing file: %d %q", code, out)
	}
	clamd.Kill()
	if code, out := run("", clean); code != 2 || !strings.Contains(out, "ERROR") || strings.Contains(out, ": OK") {
		t.Errorf("clamd down: %d %q", code, out)
	}
}

func TestServeRefusesBadConfiguration(t *testing.T) {
	var out bytes.Buffer
	code := Main(context.Background(), []string{"serve", "--backend", "unix:/x.sock", "--listen", "tcp:0.0.0.0:3310"}, &out, &out)
	if code != exitConfig || !strings.Contains(out.String(), "--listen") && !strings.Contains(out.String(), "not loopback") {
		t.Errorf("exit %d: %s", code, out.String())
	}
	out.Reset()
	code = Main(context.Background(), []string{"serve", "--config", "/nonexistent.toml", "--listen", "unix:/x"}, &out, &out)
	if code != exitConfig || !strings.Contains(out.String(), "cannot be combined") {
		t.Errorf("exit %d: %s", code, out.String())
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
