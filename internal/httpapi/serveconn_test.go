package httpapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"testing"
	"time"

	"clamgate/internal/policy"
)

// selfSigned is a certificate for 127.0.0.1, made for one test.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestServeConnTLS: a TLS connection, as a tls: listener will hand it,
// is served over HTTP/2 when the client's ALPN asks for h2; when the
// gateway drains, ServeConn returns once the connection is idle.
func TestServeConnTLS(t *testing.T) {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := &Server{Log: slog.New(slog.DiscardHandler), ReadTimeout: 5 * time.Second}
	drain, retire := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.ServeConn(context.Background(), drain, c, &policy.Policy{Name: "p"}, policy.Peer{})
	}()
	client := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // the test's own certificate
	resp, err := client.Get("https://" + ln.Addr().String() + "/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 || len(body) != len(OpenAPI()) {
		t.Fatalf("%s %d, %d bytes", resp.Proto, resp.StatusCode, len(body))
	}
	retire()
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		t.Fatal("ServeConn still serving after the drain")
	}
}

// TestServeConnDrainedFirst: a connection handed over after the drain
// began, whose client sends nothing, is closed by read_timeout at the
// latest, and ServeConn returns.
func TestServeConnDrainedFirst(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	s := &Server{Log: slog.New(slog.DiscardHandler), ReadTimeout: time.Second}
	drain, retire := context.WithCancel(context.Background())
	retire()
	done := make(chan struct{})
	go func() {
		s.ServeConn(context.Background(), drain, a, &policy.Policy{Name: "p"}, policy.Peer{})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("ServeConn hangs on a connection handed over after the drain")
	}
}

// TestServeConnDrainIdle: an idle HTTP/1.1 keep-alive connection is closed
// when the gateway drains (a reload that reroutes its listener).
func TestServeConnDrainIdle(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := &Server{Log: slog.New(slog.DiscardHandler), ReadTimeout: 30 * time.Second}
	drain, retire := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.ServeConn(context.Background(), drain, c, &policy.Policy{Name: "p"}, policy.Peer{})
	}()
	resp, err := http.Get("http://" + ln.Addr().String() + "/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	time.Sleep(100 * time.Millisecond)
	retire()
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("the idle connection still served after the drain")
	}
}
