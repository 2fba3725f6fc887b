package metrics

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"clamgate/internal/scan"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
)

var update = flag.Bool("update", false, "rewrite testdata/series.golden")

func mailJob() scan.Job {
	return scan.Job{Client: "mail", Protocol: "milter", Kind: scan.Stream, Object: "stream"}
}

func infected() scan.Outcome {
	return scan.Outcome{
		Result:   scan.Result{Reply: "stream: Eicar-Signature FOUND", Verdict: scan.Infected, Threat: "Eicar-Signature"},
		Wait:     3 * time.Millisecond,
		Duration: 40 * time.Millisecond,
		Bytes:    68,
	}
}

// feed makes every series of the package exist once, as a running gateway
// would after its first scans.
func feed(m *Metrics) {
	m.Done(mailJob(), infected())
	m.Done(scan.Job{Client: "proxy", Protocol: "icap", Kind: scan.Stream, Object: "stream"},
		scan.Outcome{Err: &scan.BusyError{Reason: "queue full"}})
	m.Done(scan.Job{Client: "amavis", Protocol: "clamd", Kind: scan.File, Object: "/var/lib/amavis/tmp/x"},
		scan.Outcome{Result: scan.Result{Reply: "fd[9]: OK", Verdict: scan.Clean}, Duration: 2 * time.Millisecond})
	m.Queue("proxy", 7, 7<<20)
	m.Done(scan.Job{Client: "proxy", Protocol: "clamd", Kind: scan.Stream, Object: "stream"},
		scan.Outcome{Result: scan.Result{Reply: "stream: OK", Verdict: scan.Clean}, Bytes: 20 << 20, Bulk: true})
	m.Done(scan.Job{Client: "proxy", Protocol: "icap", Kind: scan.Stream, Object: "stream"},
		scan.Outcome{Err: scan.ErrClientGone, Abandoned: "queued"})
	m.SetBackends(func() []BackendState {
		return []BackendState{{"unix:/run/clamav/clamd.sock", "primary", true}, {"tcp:127.0.0.1:3311", "fallback", false}}
	})
	m.SetDatabase(func() (int, int, time.Time, bool) { return 27500, 8_700_000, time.Now().Add(-time.Hour), true })
	m.SetEngineMemory(func() (int64, int64, bool) { return 1 << 30, 2 << 30, true })
	m.SetHeld(func() time.Duration { return 0 })
	m.SetReloadMode(func() (string, string) { return "concurrent", "cgroup" })
	m.TLSRefused("tls:0.0.0.0:3311", "unknown_ca")
	m.SetTLS(func() []TLSExpiry {
		return []TLSExpiry{{Role: "listener", Address: "tls:0.0.0.0:3311", NotAfter: time.Now().Add(90 * 24 * time.Hour)}}
	})
}

func TestDoneCountsByLabels(t *testing.T) {
	m := New()
	feed(m)
	m.Done(mailJob(), infected())
	m.Done(scan.Job{Client: "admin", Protocol: "clamd", Kind: scan.Command, Command: "PING"}, scan.Outcome{})

	if got := testutil.ToFloat64(m.scans.WithLabelValues("mail", "milter", "infected")); got != 2 {
		t.Errorf("mail infected scans = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.scans.WithLabelValues("proxy", "icap", "busy")); got != 1 {
		t.Errorf("proxy busy scans = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.bytes.WithLabelValues("mail", "milter")); got != 136 {
		t.Errorf("mail bytes = %v, want 136", got)
	}
	if got := testutil.ToFloat64(m.depth.WithLabelValues("proxy")); got != 7 {
		t.Errorf("proxy queue depth = %v, want 7", got)
	}
	if got := testutil.ToFloat64(m.queued.WithLabelValues("proxy")); got != 7<<20 {
		t.Errorf("proxy queued bytes = %v, want 7 MiB", got)
	}
	if got := testutil.ToFloat64(m.gone.WithLabelValues("proxy", "queued")); got != 1 {
		t.Errorf("proxy jobs abandoned while queued = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.bulk.WithLabelValues("proxy")); got != 1 {
		t.Errorf("proxy bulk jobs = %v, want 1", got)
	}
	if n := testutil.CollectAndCount(m.scans); n != 5 {
		t.Errorf("%d scans_total series, want 5 (commands must not count)", n)
	}
	// The refused job reached neither clamd nor the queue; the abandoned
	// one waited in the queue but never reached clamd.
	if n := testutil.CollectAndCount(m.duration); n != 3 {
		t.Errorf("%d scan_duration series, want 3 (busy and abandoned in the queue excluded)", n)
	}
	if n := testutil.CollectAndCount(m.wait); n != 3 {
		t.Errorf("%d queue_wait series, want 3 (refused at once excluded)", n)
	}
}

func TestHeldJobCountsItsWait(t *testing.T) {
	m := New()
	m.Done(mailJob(), scan.Outcome{Err: &scan.HeldError{Waited: 30 * time.Second}, Wait: 30 * time.Second})
	want := `
# HELP clamgate_queue_wait_seconds Time scan jobs waited in the gateway's queue before clamd (jobs refused at once excluded).
# TYPE clamgate_queue_wait_seconds histogram
clamgate_queue_wait_seconds_bucket{client="mail",le="0.001"} 0
clamgate_queue_wait_seconds_bucket{client="mail",le="0.0025"} 0
clamgate_queue_wait_seconds_bucket{client="mail",le="0.005"} 0
clamgate_queue_wait_seconds_bucket{client="mail",le="0.01"} 0
clamgate_queue_wait_seconds_bucket{client="mail",le="0.025"} 0
clamgate_queue_wait_seconds_bucket{client="mail",le="0.05"} 0
clamgate_queue_wait_seconds_bucket{client="mail",le="0.1"} 0
clamgate_queue_wait_seconds_bucket{client="mail",le="0.25"} 0
clamgate_queue_wait_seconds_bucket{client="mail",le="0.5"} 0
clamgate_queue_wait_seconds_bucket{client="mail",le="1"} 0
clamgate_queue_wait_seconds_bucket{client="mail",le="2.5"} 0
clamgate_queue_wait_seconds_bucket{client="mail",le="5"} 0
clamgate_queue_wait_seconds_bucket{client="mail",le="10"} 0
clamgate_queue_wait_seconds_bucket{client="mail",le="30"} 1
clamgate_queue_wait_seconds_bucket{client="mail",le="60"} 1
clamgate_queue_wait_seconds_bucket{client="mail",le="120"} 1
clamgate_queue_wait_seconds_bucket{client="mail",le="+Inf"} 1
clamgate_queue_wait_seconds_sum{client="mail"} 30
clamgate_queue_wait_seconds_count{client="mail"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "clamgate_queue_wait_seconds"); err != nil {
		t.Error(err)
	}
	if got := testutil.ToFloat64(m.scans.WithLabelValues("mail", "milter", "busy")); got != 1 {
		t.Errorf("held job verdict: busy count %v, want 1", got)
	}
}

func TestScrapeTimeGauges(t *testing.T) {
	m := New()
	feed(m)
	built := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m.state.now = func() time.Time { return built.Add(90 * time.Minute) }
	m.SetDatabase(func() (int, int, time.Time, bool) { return 27500, 8_700_000, built, true })
	want := `
# HELP clamgate_backend_up Whether the clamd backend answered its last health check (1) or not (0).
# TYPE clamgate_backend_up gauge
clamgate_backend_up{backend="tcp:127.0.0.1:3311",role="fallback"} 0
clamgate_backend_up{backend="unix:/run/clamav/clamd.sock",role="primary"} 1
# HELP clamgate_database_age_seconds Seconds since the loaded signature database was built.
# TYPE clamgate_database_age_seconds gauge
clamgate_database_age_seconds 5400
# HELP clamgate_database_reload_mode The mode the next database reload runs in (1): frugal holds scans with one database in memory, concurrent keeps scanning with two; basis is what chose it (config, cgroup, host, unknown, external).
# TYPE clamgate_database_reload_mode gauge
clamgate_database_reload_mode{basis="cgroup",mode="concurrent"} 1
# HELP clamgate_database_version Version of the signature database the engine has loaded (daily.cvd/cld).
# TYPE clamgate_database_version gauge
clamgate_database_version 27500
# HELP clamgate_engine_memory_limit_bytes Memory cap of the engine's cgroup (memory.max); absent when uncapped.
# TYPE clamgate_engine_memory_limit_bytes gauge
clamgate_engine_memory_limit_bytes 2.147483648e+09
`
	names := []string{"clamgate_backend_up", "clamgate_database_age_seconds", "clamgate_database_reload_mode",
		"clamgate_database_version", "clamgate_engine_memory_limit_bytes"}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

// A source that does not know (no database loaded yet, engine not started)
// must drop its series rather than report zeros that look like facts.
func TestUnknownStateIsAbsent(t *testing.T) {
	m := New()
	m.SetDatabase(func() (int, int, time.Time, bool) { return 0, 0, time.Time{}, false })
	m.SetEngineMemory(func() (int64, int64, bool) { return 300 << 20, 0, true })
	m.SetBackends(nil)
	if n := testutil.CollectAndCount(m.state); n != 1 {
		t.Errorf("%d state series, want only engine_rss_bytes", n)
	}
}

// TestSeriesGolden pins the names, types and help of the gateway's own
// series, so that renaming one (and breaking dashboards) is a visible diff.
func TestSeriesGolden(t *testing.T) {
	m := New()
	feed(m)
	m.ConfigLoaded(time.Now(), map[string]int{"mail": 2}, false)
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, mf := range families {
		if _, err := expfmt.MetricFamilyToText(&text, mf); err != nil {
			t.Fatal(err)
		}
	}
	var lines []string
	for line := range strings.Lines(text.String()) {
		if strings.HasPrefix(line, "# HELP clamgate_") || strings.HasPrefix(line, "# TYPE clamgate_") {
			lines = append(lines, line)
		}
	}
	slices.Sort(lines)
	got := strings.Join(lines, "")
	golden := filepath.Join("testdata", "series.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("series changed (go test -run SeriesGolden -update if deliberate):\n got:\n%s\nwant:\n%s", got, want)
	}
}

// The runtime and process collectors are part of the contract: the gateway's
// own RSS and descriptors under load are what the memory cap is about.
func TestRuntimeCollectors(t *testing.T) {
	families, err := New().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range families {
		names = append(names, mf.GetName())
	}
	for _, want := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if !slices.Contains(names, want) {
			t.Errorf("no %s in %v", want, names)
		}
	}
}

func TestBackendErrorIsFailed(t *testing.T) {
	m := New()
	m.Done(mailJob(), scan.Outcome{Err: errors.New("backend: connection refused")})
	if got := testutil.ToFloat64(m.scans.WithLabelValues("mail", "milter", "failed")); got != 1 {
		t.Errorf("failed = %v, want 1", got)
	}
}
