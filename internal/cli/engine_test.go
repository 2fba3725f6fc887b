package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestEnginePrepareExits: as an ExecCondition=, engine prepare skips the
// unit (1) when the configuration asks for no engine unit or another one,
// and fails it (255) when the configuration does not load.
func TestEnginePrepareExits(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	listener := "[[listener]]\naddress = \"unix:" + dir + "/gw.sock\"\npolicy = \"p\"\n[policy.p]\n"
	cases := []struct {
		name, src string
		want      int
	}{
		{"external clamd", "[backend]\naddress = \"unix:/run/clamav/clamd.ctl\"\n" + listener, exitNotAsked},
		{"in-process engine", "[engine]\n" + listener, exitNotAsked},
		{"another unit", "[engine]\nunit = \"other.service\"\n" + listener, exitNotAsked},
		{"broken file", "[engine]\nunit = 3\n" + listener, exitPrepareError},
	}
	for _, c := range cases {
		var out bytes.Buffer
		got := Main(context.Background(), []string{"engine", "prepare", "--unit", "clamgate-engine.service",
			"--config", write(c.name+".toml", c.src)}, &out, &out)
		if got != c.want {
			t.Errorf("%s: exit %d, want %d\n%s", c.name, got, c.want, out.String())
		}
	}
}
