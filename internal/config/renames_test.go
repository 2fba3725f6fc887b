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
