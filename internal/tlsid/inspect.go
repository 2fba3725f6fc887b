package tlsid

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// ExpiryWarning is how long before expiry a certificate is reported: the
// alert rule, `config check` and doctor use the same 14 days.
const ExpiryWarning = 14 * 24 * time.Hour

// Inspection is what `config check` and doctor say of one set of files.
type Inspection struct {
	NotAfter time.Time // the earliest expiry of the certificate and the CA
	Subject  string
	Err      error  // the files cannot be used: unreadable, mismatched, expired
	Warning  string // they can, but: expiring soon, or a chain that does not verify
}

// Inspect reads f as the gateway would, and checks that the key matches
// the certificate, that the certificate verifies against the CA (or the
// system's roots: a server certificate need not come from the client CA)
// and that nothing expires within ExpiryWarning of now.
func Inspect(f Files, now time.Time) Inspection {
	m, err := read(f)
	if err != nil {
		return Inspection{Err: err}
	}
	in := Inspection{NotAfter: m.notAfter, Subject: m.leaf.Subject.String()}
	switch left := m.notAfter.Sub(now); {
	case left <= 0:
		in.Err = fmt.Errorf("%s: expired on %s", f.Cert, m.notAfter.Format(time.DateOnly))
		return in
	case left < ExpiryWarning:
		in.Warning = fmt.Sprintf("expires in %d days (%s)", int(left.Hours()/24), m.notAfter.Format(time.DateOnly))
	}
	if err := verify(m, now); err != nil {
		in.Warning = joinWarning(in.Warning, err.Error())
	}
	return in
}

func verify(m *material, now time.Time) error {
	opts := x509.VerifyOptions{CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	if len(m.cert.Certificate) > 1 {
		opts.Intermediates = x509.NewCertPool()
		for _, der := range m.cert.Certificate[1:] {
			if c, err := x509.ParseCertificate(der); err == nil {
				opts.Intermediates.AddCert(c)
			}
		}
	}
	if m.pool != nil {
		opts.Roots = m.pool
		if _, err := m.leaf.Verify(opts); err == nil {
			return nil
		}
	}
	opts.Roots = nil // the system's
	if _, err := m.leaf.Verify(opts); err != nil {
		return errors.New("the certificate does not verify against the configured CA nor the system's: its peers must trust its issuer")
	}
	return nil
}

func joinWarning(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
