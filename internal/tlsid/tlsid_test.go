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

func TestInspect(t *testing.T) {
	dir := t.TempDir()
	ca, caPair, _ := NewCA("test CA", 365*24*time.Hour)
	caFile, _, _ := caPair.Write(dir, "ca")
	other, otherPair, _ := NewCA("other CA", 365*24*time.Hour)
	otherFile, _, _ := otherPair.Write(dir, "other")
	now := time.Now()
	for _, tc := range []struct {
		name     string
		issuer   *Issuer
		from     time.Time
		validity time.Duration
		ca       string
		err      bool
		warning  bool
	}{
		{"good", ca, now, 90 * 24 * time.Hour, caFile, false, false},
		{"expiring", ca, now, 10 * 24 * time.Hour, caFile, false, true},
		{"expired", ca, now.Add(-48 * time.Hour), time.Hour, caFile, true, false},
		{"another CA", other, now, 90 * 24 * time.Hour, caFile, false, true},
		{"its own CA", other, now, 90 * 24 * time.Hour, otherFile, false, false},
	} {
		pair, _ := tc.issuer.Issue([]string{"dns:x.example"}, tc.from, tc.validity)
		cert, key, _ := pair.Write(dir, "leaf")
		in := Inspect(Files{Cert: cert, Key: key, CA: tc.ca}, now)
		if (in.Err != nil) != tc.err || (in.Warning != "") != tc.warning {
			t.Errorf("%s: %+v", tc.name, in)
		}
	}
	pair, _ := ca.Issue([]string{"dns:x.example"}, now, time.Hour)
	wrong, _ := ca.Issue([]string{"dns:y.example"}, now, time.Hour)
	cert, _, _ := pair.Write(dir, "a")
	_, key, _ := wrong.Write(dir, "b")
	if in := Inspect(Files{Cert: cert, Key: key}, now); in.Err == nil {
		t.Errorf("a key of another certificate: %+v", in)
	}
}
