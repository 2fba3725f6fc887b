package tlsid

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Issuer is a private CA: a convenience to start a site's TLS (`clamgate
// tls`), and the tests' CA, not a PKI (no revocation, no intermediates).
type Issuer struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// Pair is a certificate and its key, PEM-encoded.
type Pair struct{ CertPEM, KeyPEM []byte }

// NewCA makes a self-signed CA named cn, valid from now for validity.
func NewCA(cn string, validity time.Duration) (*Issuer, Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, Pair{}, err
	}
	tmpl := template(cn, time.Now(), validity)
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, Pair{}, err
	}
	cert, _ := x509.ParseCertificate(der)
	pair, err := encode(der, key)
	return &Issuer{Cert: cert, Key: key}, pair, err
}

// LoadIssuer reads a CA written by NewCA (or any ECDSA CA).
func LoadIssuer(certFile, keyFile string) (*Issuer, error) {
	m, err := read(Files{Cert: certFile, Key: keyFile})
	if err != nil {
		return nil, err
	}
	key, ok := m.cert.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || !m.leaf.IsCA {
		return nil, errors.New(certFile + ": not an ECDSA CA certificate")
	}
	return &Issuer{Cert: m.leaf, Key: key}, nil
}

// Issue makes a certificate for names ("dns:…", "uri:…", "ip:…", "cn:…";
// a bare name is a DNS name), good for a server and a client both (a
// gateway is one to its clients and the other to its central gateway),
// valid from notBefore for validity.
func (is *Issuer) Issue(names []string, notBefore time.Time, validity time.Duration) (Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Pair{}, err
	}
	tmpl := template("", notBefore, validity)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	for _, n := range names {
		kind, v, ok := strings.Cut(n, ":")
		if !ok || strings.Contains(kind, "/") {
			kind, v = "dns", n
		}
		switch kind {
		case "dns":
			tmpl.DNSNames = append(tmpl.DNSNames, v)
		case "ip":
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(v))
		case "cn":
			tmpl.Subject.CommonName = v
		case "uri":
			u, err := url.Parse(v)
			if err != nil {
				return Pair{}, err
			}
			tmpl.URIs = append(tmpl.URIs, u)
		default:
			return Pair{}, fmt.Errorf("%q: want dns:, ip:, uri: or cn:", n)
		}
	}
	if tmpl.Subject.CommonName == "" && len(tmpl.DNSNames) > 0 {
		tmpl.Subject.CommonName = tmpl.DNSNames[0]
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, is.Cert, &key.PublicKey, is.Key)
	if err != nil {
		return Pair{}, err
	}
	return encode(der, key)
}

func template(cn string, notBefore time.Time, validity time.Duration) *x509.Certificate {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore.Add(-time.Minute), NotAfter: notBefore.Add(validity)}
}

func encode(der []byte, key *ecdsa.PrivateKey) (Pair, error) {
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Pair{}, err
	}
	return Pair{CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})}, nil
}

// Write stores the pair as dir/name.crt and dir/name.key (mode 0600),
// each replaced by a rename so that a watching gateway never reads half a
// file. It returns the two paths.
func (p Pair) Write(dir, name string) (certFile, keyFile string, err error) {
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := writeAtomic(keyFile, p.KeyPEM, 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, writeAtomic(certFile, p.CertPEM, 0o644)
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
