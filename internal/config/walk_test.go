package config

import (
	"strings"
	"testing"
)

func TestPolicyWalkKeys(t *testing.T) {
	src := `
[backend]
address = "unix:/run/clamav/clamd.sock"
[[listener]]
address = "unix:/run/clamgate/clamd.sock"
policy = "p"
[policy.p]
roots = ["/srv"]
%s
`
	cfg, err := Parse("t.toml", []byte(strings.Replace(src, "%s", "allow_writable_root_ancestors = true\nmax_walk_depth = 8\nmax_dir_entries = 100", 1)))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Policies["p"]
	if depth, entries := p.MaxWalkDepth, p.MaxDirEntries; !p.AllowWritableRootAncestors || depth != 8 || entries != 100 {
		t.Errorf("allow %v, depth %d, entries %d", p.AllowWritableRootAncestors, depth, entries)
	}
	_, err = Parse("t.toml", []byte(strings.Replace(src, "%s", "max_walk_depth = -1\nmax_dir_entries = -1", 1)))
	if err == nil || !strings.Contains(err.Error(), "policy.p.max_walk_depth: must not be negative") || !strings.Contains(err.Error(), "policy.p.max_dir_entries: must not be negative") {
		t.Errorf("negative walk bounds: %v", err)
	}
}
