package config

import (
	"strings"
	"testing"
	"time"
)

// TestFrontBounds: the ICAP request total and the status port's connection
// limit have defaults, take the configured values, and a negative limit is
// an error naming its key.
func TestFrontBounds(t *testing.T) {
	base := "[backend]\naddress = \"unix:/x.sock\"\n[[listener]]\naddress = \"unix:/y.sock\"\npolicy = \"p\"\n[policy.p]\n"
	cfg, err := Parse("t.toml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ICAP.RequestTimeout != DefaultICAPRequestTimeout || cfg.HTTPMaxConnections != DefaultHTTPMaxConnections {
		t.Errorf("defaults: request_timeout %v, http_max_connections %d", cfg.ICAP.RequestTimeout, cfg.HTTPMaxConnections)
	}
	cfg, err = Parse("t.toml", []byte("[server]\nhttp_max_connections = 4\n[icap]\nrequest_timeout = \"30s\"\n"+base))
	if err != nil || cfg.ICAP.RequestTimeout != 30*time.Second || cfg.HTTPMaxConnections != 4 {
		t.Fatalf("configured: %v %+v", err, cfg)
	}
	_, err = Parse("t.toml", []byte("[server]\nhttp_max_connections = -1\n"+base))
	if err == nil || !strings.Contains(err.Error(), "server.http_max_connections") {
		t.Fatalf("negative: %v", err)
	}
}
