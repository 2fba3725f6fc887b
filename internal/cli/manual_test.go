package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"clamgate/internal/config"
	"clamgate/internal/manual"
	"clamgate/internal/testenv"
)

// TestManualCoversUsage: every command the usage names has its entry in
// clamgate(8), and each entry lists every flag the command takes.
func TestManualCoversUsage(t *testing.T) {
	page := commandPage(context.Background())
	var documented []string
	for _, it := range page.Sections[2].Items {
		documented = append(documented, it.Tag)
		if len(it.Options) == 0 && it.Tag != "clamgate version" && it.Tag != "clamgate manual" && it.Tag != "clamgate token new" { // no flags
			t.Errorf("%s: no flags read from its -h", it.Tag)
		}
	}
	for _, form := range synopsis(context.Background()) {
		f := strings.Fields(form)
		name := f[0] + " " + f[1]
		found := false
		for _, d := range documented {
			found = found || strings.HasPrefix(d, name)
		}
		if !found {
			t.Errorf("usage names %q, which manualCommands does not document", name)
		}
	}
	rendered := page.Render()
	for _, flag := range []string{`\-\-allow\-root`, `\-\-fdpass`, `\-\-max\-age`, `\-\-allow\-moving\-tag`, `\-\-offline`, `\-\-engine`, `\-\-activate`, `\-\-as\-user`} {
		if !strings.Contains(rendered, flag) {
			t.Errorf("clamgate(8) lacks %s", flag)
		}
	}
}

// TestManualPagesLint renders both pages through man(1) with warnings on,
// as lintian does, and wants it silent; the configuration page must carry
// every table of the reference.
func TestManualPagesLint(t *testing.T) {
	if _, err := exec.LookPath("man"); err != nil {
		testenv.MissingPeer(t, "man(1)", "run scripts/install-deps.sh --test (apt-get install man-db)")
	}
	dir := t.TempDir()
	for _, section := range []string{"8", "5"} {
		var out bytes.Buffer
		if code := Main(context.Background(), []string{"manual", section}, &out, &out); code != 0 {
			t.Fatalf("manual %s: %d %s", section, code, out.String())
		}
		path := filepath.Join(dir, "page."+section)
		must(t, os.WriteFile(path, out.Bytes(), 0o644))
		cmd := exec.Command("man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", path)
		cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "MANWIDTH=80")
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = nil, &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("man --warnings on clamgate(%s): %v\n%s", section, err, stderr.String())
		}
		if section == "5" {
			for _, sub := range manual.Reference(config.Reference) {
				if !strings.Contains(out.String(), sub.Heading) {
					t.Errorf("clamgate.toml(5) lacks %s", sub.Heading)
				}
			}
		}
	}
}

// TestManualConfigExamples: the files clamgate.toml(5) shows are files
// clamgate accepts, the second added to the first as the page says.
func TestManualConfigExamples(t *testing.T) {
	var file string
	for i, ex := range configExamples {
		file += ex.Code + "\n\n"
		if _, err := config.Parse(fmt.Sprintf("example %d", i+1), []byte(file)); err != nil {
			t.Errorf("clamgate.toml(5) example %d does not load: %v\n%s", i+1, err, file)
		}
	}
}
