package sandbox

import (
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/elastic/go-seccomp-bpf/arch"
)

// TestPolicyAssembles: every listed call exists on this architecture (so
// none is silently left out of the filter here) and the policy assembles.
func TestPolicyAssembles(t *testing.T) {
	info, err := arch.GetInfo("")
	if err != nil {
		t.Skip(err)
	}
	for _, list := range [][]string{Traced, TracedAsRoot} {
		for _, n := range list {
			if _, ok := info.SyscallNames[n]; !ok && info.Name == "x86_64" {
				t.Errorf("%s: no such system call on %s", n, info.Name)
			}
		}
	}
	p := policy()
	if _, err := p.Assemble(); err != nil {
		t.Fatal(err)
	}
}

// TestNeverRoot: as root, clamgate refuses to start clamd without a user
// to drop to, with root as that user, or with a user that does not exist.
func TestNeverRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for user, want := range map[string]string{
		"":                         "no user is set for clamd",
		"root":                     "is root",
		"clamgate-no-such-user-42": "adduser --system",
	} {
		_, err := New(Config{Program: "/usr/sbin/clamd", User: user, Database: "/nonexistent", StateDir: t.TempDir(),
			Log: slog.New(slog.DiscardHandler)})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("user %q: %v, want an error saying %q", user, err, want)
		}
	}
}
