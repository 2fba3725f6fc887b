package config

import (
	"reflect"
	"strings"
	"testing"
)

// TestRenamedKeysWarn: a file with the old names loads to the same
// configuration as one with the new names, and each old name gets a
// warning at its line naming the new one.
func TestRenamedKeysWarn(t *testing.T) {
	const common = "[[listener]]\naddress = \"unix:/run/x.sock\"\nprotocol = \"milter\"\npolicy = \"p\"\n"
	old := "[engine]\nmax_threads = 12\n[backend]\nmax_jobs = 12\n" + common +
		"[policy.p]\nmax_stream = \"10M\"\n[milter]\non_infected = \"accept\"\nover_limit = \"accept\"\n"
	renamed := "[engine]\n[backend]\nmax_jobs = 12\n" + common +
		"[policy.p]\nmax_object = \"10M\"\n[milter]\non_infected = \"pass\"\nover_limit = \"pass\"\n"
	a, err := Parse("old.toml", []byte(old))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse("new.toml", []byte(renamed))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Warnings) != 0 {
		t.Errorf("new names warn: %v", b.Warnings)
	}
	var got []string
	for _, w := range a.Warnings {
		got = append(got, w.Error())
	}
	want := []string{
		"old.toml:2: engine.max_threads: renamed backend.max_jobs",
		"old.toml:10: policy.p.max_stream: renamed policy.p.max_object",
		"old.toml:12: milter.on_infected: renamed \"pass\"",
		"old.toml:13: milter.over_limit: renamed \"pass\"",
	}
	if len(got) != len(want) {
		t.Fatalf("warnings:\n%s", strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("warning %d: %q, want %q...", i, got[i], want[i])
		}
	}
	a.file, a.lines, a.Warnings = b.file, b.lines, nil
	if !reflect.DeepEqual(a.Policies["p"], b.Policies["p"]) || !reflect.DeepEqual(a.Milter, b.Milter) || a.Engine.MaxThreads != b.Engine.MaxThreads || a.MaxJobs != b.MaxJobs {
		t.Errorf("old and new names load differently:\n%+v\n%+v", a, b)
	}
}

// TestManagedClamdTakesLargestObject: the managed clamd's StreamMaxLength
// is the largest max_object of the policies (never below clamd's default),
// a policy without one keeps the default, and engine.stream_max_length,
// still accepted, warns.
func TestManagedClamdTakesLargestObject(t *testing.T) {
	src := "[engine]\n%s[[listener]]\naddress = \"unix:/run/x.sock\"\npolicy = \"big\"\n[[listener]]\naddress = \"unix:/run/y.sock\"\npolicy = \"plain\"\n[policy.big]\nmax_object = \"300M\"\n[policy.plain]\n"
	cfg, err := Parse("a.toml", []byte(strings.Replace(src, "%s", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Engine.StreamMaxLength != 300<<20 || cfg.Policies["big"].MaxObject != 300<<20 || cfg.Policies["plain"].MaxObject != DefaultStreamMax || len(cfg.Warnings) != 0 {
		t.Errorf("engine %d, big %d, plain %d, warnings %v", cfg.Engine.StreamMaxLength, cfg.Policies["big"].MaxObject, cfg.Policies["plain"].MaxObject, cfg.Warnings)
	}
	cfg, err = Parse("a.toml", []byte(strings.Replace(src, "%s", "stream_max_length = \"400M\"\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Engine.StreamMaxLength != 400<<20 || len(cfg.Warnings) != 1 || cfg.Warnings[0].Key != "engine.stream_max_length" {
		t.Errorf("explicit: engine %d, warnings %v", cfg.Engine.StreamMaxLength, cfg.Warnings)
	}
}
