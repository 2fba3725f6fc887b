// Package kubelease takes turns with the other pods of a pool through a
// Kubernetes Lease (coordination.k8s.io/v1), so that only one of them at a
// time does something that takes it out of service (a frugal reload).
//
// It is a small REST client over net/http with the pod's service-account
// token, not client-go: the gateway needs three calls on one object. It
// declares the Lease's fields itself rather than importing k8s.io/api's
// types, which link k8s.io/apimachinery and a dozen more modules (4.2 MB,
// a fifth of the binary); the tests decode what it sends strictly into
// k8s.io/api's types, so a misspelt field fails there.
//
// Like client-go's leader election, a lease held by another pod is taken
// over only after this pod has seen it unchanged for its whole duration,
// by its own clock: the pods' clocks need not agree.
package kubelease

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// wireLease is the part of a coordination.k8s.io/v1 Lease this package reads
// and writes. Metadata goes back as it was read: its resourceVersion makes
// every update conditional (a conflict means another pod was first), and
// labels or annotations someone else set are kept.
type wireLease struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Metadata   json.RawMessage `json:"metadata"`
	Spec       wireSpec        `json:"spec"`
}

type wireSpec struct {
	HolderIdentity       *string `json:"holderIdentity,omitempty"`
	LeaseDurationSeconds *int32  `json:"leaseDurationSeconds,omitempty"`
	AcquireTime          *string `json:"acquireTime,omitempty"` // MicroTime: RFC 3339 with microseconds
	RenewTime            *string `json:"renewTime,omitempty"`
	LeaseTransitions     *int32  `json:"leaseTransitions,omitempty"`
	// Kept as read: coordinated leader election's fields.
	Strategy        *string `json:"strategy,omitempty"`
	PreferredHolder *string `json:"preferredHolder,omitempty"`
}

type wireMeta struct {
	Name            string `json:"name"`
	Namespace       string `json:"namespace,omitempty"`
	ResourceVersion string `json:"resourceVersion,omitempty"`
}

// resourceVersion is the lease's version; "" when unreadable.
func (w *wireLease) resourceVersion() string {
	var m wireMeta
	json.Unmarshal(w.Metadata, &m)
	return m.ResourceVersion
}

// microTime is a Kubernetes MicroTime.
func microTime(t time.Time) *string {
	s := t.UTC().Format("2006-01-02T15:04:05.000000Z07:00")
	return &s
}

// wireStatus is the API's error body.
type wireStatus struct {
	Message string `json:"message"`
}

// ServiceAccountDir is where Kubernetes mounts a pod's API credentials.
const ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// Defaults of Config.
const (
	DefaultDuration = 15 * time.Second
	DefaultPoll     = time.Second
)

// Config names the lease and how to reach the API.
type Config struct {
	// API is the server's base URL; "" = https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT.
	API string
	// Credentials is the directory holding token, ca.crt and namespace;
	// "" = ServiceAccountDir. The token is read again for every request,
	// since projected tokens rotate.
	Credentials string
	Name        string
	Namespace   string // "" = $POD_NAMESPACE, else Credentials/namespace
	Holder      string // "" = $POD_NAME, else the host name
	// Duration is the lease's duration: a holder that stops renewing
	// loses it this long after its last renewal. 0 = DefaultDuration.
	Duration time.Duration
	Poll     time.Duration // how often a waiting pod looks again; 0 = DefaultPoll
	Log      *slog.Logger
}

// Lease is one named lease, taken and released by this pod.
type Lease struct {
	cfg    Config
	url    string // the lease's own URL
	tokens string // the token file
	client *http.Client
	log    *slog.Logger
}

// New resolves the configuration against the pod's environment.
func New(cfg Config) (*Lease, error) {
	cfg.Credentials = cmp.Or(cfg.Credentials, ServiceAccountDir)
	cfg.Duration = max(cmp.Or(cfg.Duration, DefaultDuration), time.Second)
	cfg.Poll = cmp.Or(cfg.Poll, DefaultPoll)
	if cfg.Name == "" {
		return nil, errors.New("kubernetes lease: no name")
	}
	if cfg.API == "" {
		host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
		if host == "" || port == "" {
			return nil, errors.New("kubernetes lease: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset (not in a pod?)")
		}
		cfg.API = "https://" + net.JoinHostPort(host, port)
	}
	if cfg.Namespace == "" {
		cfg.Namespace = os.Getenv("POD_NAMESPACE")
	}
	if cfg.Namespace == "" {
		ns, err := os.ReadFile(filepath.Join(cfg.Credentials, "namespace"))
		if err != nil {
			return nil, fmt.Errorf("kubernetes lease: no POD_NAMESPACE and %w", err)
		}
		cfg.Namespace = strings.TrimSpace(string(ns))
	}
	if cfg.Holder == "" {
		cfg.Holder = os.Getenv("POD_NAME")
	}
	if cfg.Holder == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("kubernetes lease: no POD_NAME and %w", err)
		}
		cfg.Holder = h
	}
	pem, err := os.ReadFile(filepath.Join(cfg.Credentials, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("kubernetes lease: the API's CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("kubernetes lease: no certificate in %s", filepath.Join(cfg.Credentials, "ca.crt"))
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	base := strings.TrimSuffix(cfg.API, "/") + "/apis/coordination.k8s.io/v1/namespaces/" + url.PathEscape(cfg.Namespace) + "/leases"
	return &Lease{cfg: cfg, url: base + "/" + url.PathEscape(cfg.Name), tokens: filepath.Join(cfg.Credentials, "token"),
		client: &http.Client{Transport: transport, Timeout: 10 * time.Second}, log: cmp.Or(cfg.Log, slog.New(slog.DiscardHandler))}, nil
}

// String names the lease for logs.
func (l *Lease) String() string { return l.cfg.Namespace + "/" + l.cfg.Name }

// Holder is who this pod is in the lease.
func (l *Lease) Holder() string { return l.cfg.Holder }

// Acquire waits until this pod holds the lease, or ctx ends (the caller
// bounds the wait). While held, the lease is renewed in the background;
// release gives it up (it cannot fail: a lease not given back expires).
func (l *Lease) Acquire(ctx context.Context) (release func(), err error) {
	var seen observation
	failing := false
	for {
		cur, err := l.tryAcquire(ctx, &seen)
		switch {
		case err == nil && cur != nil:
			if failing {
				l.log.Info("kubernetes lease: the API answers again", "lease", l)
			}
			return l.keep(cur), nil
		case err != nil && ctx.Err() == nil:
			if !failing {
				l.log.Warn("kubernetes lease: the API does not answer as expected; trying again", "lease", l, "err", err)
			}
			failing = true
		case err == nil:
			failing = false
		}
		// Jitter spreads the pods that saw the lease freed at once.
		wait := l.cfg.Poll/2 + rand.N(l.cfg.Poll)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("kubernetes lease %s: %w (held by %q)", l, context.Cause(ctx), seen.holder)
		case <-time.After(wait):
		}
	}
}

// observation is the lease as this pod last saw it change.
type observation struct {
	version string
	holder  string
	at      time.Time
}

// tryAcquire takes the lease when it is free; nil, nil when another pod
// holds it.
func (l *Lease) tryAcquire(ctx context.Context, seen *observation) (*wireLease, error) {
	cur, code, err := l.do(ctx, http.MethodGet, l.url, nil)
	if code == http.StatusNotFound {
		created, code, err := l.do(ctx, http.MethodPost, strings.TrimSuffix(l.url, "/"+url.PathEscape(l.cfg.Name)), l.claim(nil))
		if code == http.StatusConflict {
			return nil, nil // another pod created it first
		}
		return created, err
	}
	if err != nil {
		return nil, err
	}
	holder := ptrOr(cur.Spec.HolderIdentity)
	if v := cur.resourceVersion(); v != seen.version {
		*seen = observation{version: v, holder: holder, at: time.Now()}
	}
	duration := time.Duration(ptrOr(cur.Spec.LeaseDurationSeconds)) * time.Second
	if holder != "" && holder != l.cfg.Holder && time.Since(seen.at) < duration {
		return nil, nil
	}
	if holder != "" && holder != l.cfg.Holder {
		l.log.Warn("kubernetes lease: taking over from a holder that stopped renewing", "lease", l, "holder", holder, "unchanged_for", time.Since(seen.at).Round(time.Second))
	}
	taken, code, err := l.do(ctx, http.MethodPut, l.url, l.claim(cur))
	if code == http.StatusConflict {
		return nil, nil // changed since we read it: look again
	}
	return taken, err
}

// claim is the lease with this pod as its holder from now; cur nil for a
// new one.
func (l *Lease) claim(cur *wireLease) *wireLease {
	now := microTime(time.Now())
	next := &wireLease{}
	if cur != nil {
		next.Metadata, next.Spec = cur.Metadata, cur.Spec
	} else {
		next.Metadata, _ = json.Marshal(wireMeta{Name: l.cfg.Name, Namespace: l.cfg.Namespace})
	}
	next.APIVersion, next.Kind = "coordination.k8s.io/v1", "Lease"
	if ptrOr(next.Spec.HolderIdentity) != l.cfg.Holder {
		transitions := ptrOr(next.Spec.LeaseTransitions) + 1
		next.Spec.LeaseTransitions = &transitions
		next.Spec.AcquireTime = now
	}
	holder, seconds := l.cfg.Holder, int32(l.cfg.Duration/time.Second)
	next.Spec.HolderIdentity, next.Spec.LeaseDurationSeconds, next.Spec.RenewTime = &holder, &seconds, now
	return next
}

// keep renews the lease every third of its duration until released.
func (l *Lease) keep(cur *wireLease) func() {
	l.log.Info("kubernetes lease taken", "lease", l, "holder", l.cfg.Holder)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex // cur, between the renewals and the release
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(l.cfg.Duration / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			mu.Lock()
			next, _, err := l.do(ctx, http.MethodPut, l.url, l.claim(cur))
			if err == nil {
				cur = next
			} else if ctx.Err() == nil {
				l.log.Warn("kubernetes lease: renewal failed", "lease", l, "err", err)
			}
			mu.Unlock()
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
			mu.Lock()
			defer mu.Unlock()
			l.give(cur)
		})
	}
}

// give hands the lease back: no holder, so the next pod takes it at once.
func (l *Lease) give(cur *wireLease) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	next := *cur
	one := int32(1)
	next.Spec.HolderIdentity, next.Spec.LeaseDurationSeconds = nil, &one
	if _, _, err := l.do(ctx, http.MethodPut, l.url, &next); err != nil {
		l.log.Warn("kubernetes lease: not given back; it expires by itself", "lease", l, "after", l.cfg.Duration, "err", err)
		return
	}
	l.log.Info("kubernetes lease released", "lease", l, "holder", l.cfg.Holder)
}

// do sends one request and decodes the lease it answers; the status code
// is returned even with an error, so callers can tell a conflict.
func (l *Lease) do(ctx context.Context, method, u string, body *wireLease) (*wireLease, int, error) {
	var in io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, 0, err
		}
		in = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, in)
	if err != nil {
		return nil, 0, err
	}
	token, err := os.ReadFile(l.tokens)
	if err != nil {
		return nil, 0, fmt.Errorf("the service account's token: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		var st wireStatus
		if json.Unmarshal(raw, &st) == nil && st.Message != "" {
			return nil, resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, u, resp.StatusCode, st.Message)
		}
		return nil, resp.StatusCode, fmt.Errorf("%s %s: %s", method, u, resp.Status)
	}
	var out wireLease
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, resp.StatusCode, fmt.Errorf("%s %s: %w", method, u, err)
	}
	return &out, resp.StatusCode, nil
}

func ptrOr[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
