package config

import (
	"fmt"
	"strings"
	"testing"
)

// TestHTTPListener: an HTTP listener whose policy has no tokens serves
// loopback and unix sockets only, whatever allow_non_loopback says; tokens
// are SHA-256 in hex.
func TestHTTPListener(t *testing.T) {
	const hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	for _, tc := range []struct {
		name, listener, policy, err string
	}{
		{"loopback without tokens", `address = "tcp:127.0.0.1:8080"`, ``, ""},
		{"unix without tokens", `address = "unix:/run/x.sock"`, ``, ""},
		{"any address without tokens", `address = "tcp:0.0.0.0:8080"` + "\nallow_non_loopback = true", ``, "serves loopback only"},
		{"any address with a token", `address = "tcp:0.0.0.0:8080"` + "\nallow_non_loopback = true", `tokens_sha256 = ["` + hash + `"]`, ""},
		{"token not hex", `address = "tcp:127.0.0.1:8080"`, `tokens_sha256 = ["cg_secret"]`, "is not a SHA-256"},
		{"token short", `address = "tcp:127.0.0.1:8080"`, `tokens_sha256 = ["` + hash[:62] + `"]`, "is not a SHA-256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "[backend]\naddress = \"unix:/x\"\n[[listener]]\nprotocol = \"http\"\npolicy = \"app\"\n" + tc.listener + "\n[policy.app]\nstatus = true\n" + tc.policy + "\n"
			cfg, err := Parse("t.toml", []byte(src))
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want %q", err, tc.err)
			case err == nil && !cfg.Policies["app"].Status:
				t.Fatal("status = true not read")
			}
		})
	}
}

// TestLoopbackFromText: the file is judged by its text alone. An address
// is loopback or not; a name is left to the start-up checks to resolve,
// except where being beyond loopback would serve clients without
// credentials: there a name counts as beyond it.
func TestLoopbackFromText(t *testing.T) {
	const listener = "[backend]\naddress = \"unix:/run/clamav/clamd.sock\"\n[[listener]]\naddress = \"tcp:%s\"\npolicy = \"p\"\nprotocol = %q\nallow_non_loopback = true\n[policy.p]\n"
	for _, tc := range []struct {
		hostPort, protocol string
		allow              bool
		err                string
	}{
		{"127.0.0.1:3310", "clamd", false, ""},
		{"[::1]:3310", "clamd", false, ""},
		{"localhost:3310", "clamd", false, ""},
		{"0.0.0.0:3310", "clamd", false, "is not loopback"},
		{":3310", "clamd", false, "is not loopback"},
		{"mx.example.invalid:3310", "clamd", false, ""}, // resolved by startup
		{"mx.example.invalid:8080", "http", true, "has no tokens_sha256"},
		{"localhost:8080", "http", true, ""},
	} {
		src := strings.Replace(fmt.Sprintf(listener, tc.hostPort, tc.protocol), "allow_non_loopback = true\n", "", btoi(!tc.allow))
		_, err := Parse("t.toml", []byte(src))
		if (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s %s: %v, want %q", tc.protocol, tc.hostPort, err, tc.err)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
