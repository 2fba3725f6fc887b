package tlsid

import (
	"log/slog"
	"os"
	"testing"
	"time"
)

// TestReloadKeepsOld: a broken or mismatched new file is refused and the
// material in use stays; a good one replaces it.
func TestReloadKeepsOld(t *testing.T) {
	dir := t.TempDir()
	ca, caPair, err := NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caFile, _, _ := caPair.Write(dir, "ca")
	first, _ := ca.Issue([]string{"dns:a.example"}, time.Now(), time.Hour)
	cert, key, _ := first.Write(dir, "host")
	s, err := Load("listener tls:x", Files{Cert: cert, Key: key, CA: caFile})
	if err != nil {
		t.Fatal(err)
	}
	name := func() string { return s.cur.Load().leaf.DNSNames[0] }
	if err := os.WriteFile(cert, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if s.Reload() == nil || name() != "a.example" {
		t.Fatalf("a broken certificate was taken: %s", name())
	}
	second, _ := ca.Issue([]string{"dns:b.example"}, time.Now(), 2*time.Hour)
	other, _ := ca.Issue([]string{"dns:c.example"}, time.Now(), time.Hour)
	_ = os.WriteFile(cert, second.CertPEM, 0o644) // its key is still the first's
	if s.Reload() == nil || name() != "a.example" {
		t.Fatalf("a certificate with another's key was taken: %s", name())
	}
	_ = os.WriteFile(key, other.KeyPEM, 0o600)
	_ = os.WriteFile(cert, other.CertPEM, 0o644)
	ReloadAll(slog.New(slog.DiscardHandler), s)
	if name() != "c.example" {
		t.Fatalf("the new certificate was not taken: %s", name())
	}
	if !s.NotAfter().Before(time.Now().Add(time.Hour + time.Minute)) {
		t.Errorf("NotAfter %v", s.NotAfter())
	}
}

func TestVersion(t *testing.T) {
	for in, ok := range map[string]bool{"": true, "1.3": true, "1.2": true, "1.1": false, "1.0": false, "TLS1.3": false} {
		if _, err := Version(in); (err == nil) != ok {
			t.Errorf("Version(%q): %v", in, err)
		}
	}
}
