package metrics

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var monitoringDir = filepath.Join("..", "..", "monitoring")

// seriesName finds the series a PromQL expression reads.
var seriesName = regexp.MustCompile(`\b(?:clamgate|process|go)_[a-z0-9_]+\b`)

// TestMonitoringRules: the shipped alert rules load in Prometheus's own
// checker, and read only series the gateway exports.
func TestMonitoringRules(t *testing.T) {
	rules := filepath.Join(monitoringDir, "alerts.yml")
	promtool(t, rules)
	data, err := os.ReadFile(rules)
	if err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for line := range strings.Lines(string(data)) {
		if e, ok := strings.CutPrefix(strings.TrimSpace(line), "expr: "); ok {
			exprs = append(exprs, e)
		}
	}
	if len(exprs) < 5 {
		t.Fatalf("%d alert expressions found", len(exprs))
	}
	checkNames(t, "alerts.yml", exprs)
}

// TestDashboardQueries: every query of the Grafana dashboard parses as
// PromQL (promtool checks it as a recording rule) and reads only series
// the gateway exports.
func TestDashboardQueries(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(monitoringDir, "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			// Grafana's own variable; any range parses the same.
			e := strings.ReplaceAll(tg.Expr, "$__rate_interval", "5m")
			exprs = append(exprs, e)
			q, _ := json.Marshal(e)
			fmt.Fprintf(&rules, "      - record: dashboard:q%d\n        expr: %s\n", len(exprs), q)
		}
	}
	file := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(file, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	promtool(t, file)
	checkNames(t, "grafana-dashboard.json", exprs)
}

func promtool(t *testing.T, file string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed (Debian package prometheus): run scripts/install-deps.sh --test")
	}
	if out, err := exec.Command(bin, "check", "rules", file).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", file, err, out)
	}
}

// checkNames fails for every series the expressions read that the
// gateway's /metrics does not export.
func checkNames(t *testing.T, where string, exprs []string) {
	t.Helper()
	m := New()
	feed(m)
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var have []string
	for _, mf := range families {
		name := mf.GetName()
		have = append(have, name)
		if mf.GetType().String() == "HISTOGRAM" {
			have = append(have, name+"_bucket", name+"_sum", name+"_count")
		}
	}
	for _, e := range exprs {
		for _, name := range seriesName.FindAllString(e, -1) {
			if !slices.Contains(have, name) {
				t.Errorf("%s: %q reads %s, which /metrics does not export", where, e, name)
			}
		}
	}
}
