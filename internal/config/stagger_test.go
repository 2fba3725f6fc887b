package config

import (
	"strings"
	"testing"
)

// TestStagger: [database] stagger is off by default; "kubernetes" brings
// its defaults; anything else, or relative credentials, is refused.
func TestStagger(t *testing.T) {
	const base = "[backend]\naddress = \"unix:/run/clamav/clamd.sock\"\n[[listener]]\naddress = \"tcp:127.0.0.1:3310\"\npolicy = \"p\"\n[policy.p]\n[database]\ndir = \"/var/lib/clamav\"\n"
	cfg, err := Parse("off.toml", []byte(base))
	if err != nil || cfg.Database.Stagger != "" || cfg.Database.StaggerWait != 0 {
		t.Fatalf("default: %+v %v", cfg.Database, err)
	}
	cfg, err = Parse("on.toml", []byte(base+"stagger = \"kubernetes\"\nstagger_wait = \"2m\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d := cfg.Database; d.StaggerLease != DefaultStaggerLease || d.StaggerWait.String() != "2m0s" ||
		d.StaggerUnready != DefaultStaggerUnready || d.StaggerCredentials != DefaultStaggerCredentials {
		t.Errorf("kubernetes: %+v", d)
	}
	for src, want := range map[string]string{
		"stagger = \"etcd\"\n": "database.stagger",
		"stagger = \"kubernetes\"\nstagger_credentials = \"sa\"\n": "database.stagger_credentials",
	} {
		if _, err := Parse("bad.toml", []byte(base+src)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v", src, err)
		}
	}
}
