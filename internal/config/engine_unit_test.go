package config

import (
	"strings"
	"testing"
)

// TestEngineUnitKey: [engine] unit names a service, and leaves clamd's user
// to the unit's User=.
func TestEngineUnitKey(t *testing.T) {
	const listener = "[[listener]]\naddress = \"unix:/run/clamgate/clamd.sock\"\npolicy = \"p\"\n[policy.p]\n"
	cases := []struct{ engine, err string }{
		{`unit = "clamgate-engine.service"`, ""},
		{`unit = "clamgate-engine"`, "engine.unit:"},
		{`unit = "../x.service"`, "engine.unit:"},
		{"unit = \"clamgate-engine.service\"\nuser = \"clamav\"", "engine.user:"},
	}
	for _, c := range cases {
		cfg, err := Parse("t.toml", []byte("[engine]\n"+c.engine+"\n"+listener))
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.engine, err)
		case c.err == "" && cfg.Engine.Unit != "clamgate-engine.service":
			t.Errorf("%s: unit %q", c.engine, cfg.Engine.Unit)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want one at %s", c.engine, err, c.err)
		}
	}
}
