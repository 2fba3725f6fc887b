package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// LeaseAPI is a stand-in for the part of the Kubernetes API that
// coordination.k8s.io/v1 Leases use: GET, POST and PUT of leases with
// resourceVersion preconditions (a stale update is 409 Conflict), bearer
// token checked, over TLS. It is for unit tests of the turn-taking logic;
// the same tests run against a real kube-apiserver where one is built
// (scripts/kube-apiserver.sh). Requests counts the calls by method.
type LeaseAPI struct {
	URL, Host, Port string
	Credentials     string // a service-account directory: token, ca.crt, namespace
	mu              sync.Mutex
	leases          map[string]map[string]any
	version         int
	down            bool
	Requests        map[string]int
}

// StartLeaseAPI serves the stand-in until the test ends.
func StartLeaseAPI(t testing.TB) *LeaseAPI {
	t.Helper()
	a := &LeaseAPI{leases: map[string]map[string]any{}, Requests: map[string]int{}}
	token := randomToken()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			status(w, http.StatusUnauthorized, "Unauthorized")
			return
		}
		a.serve(w, r)
	}))
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	a.Host, a.Port, _ = net.SplitHostPort(strings.TrimPrefix(srv.URL, "https://"))
	a.Credentials = filepath.Join(TempDir(t), "serviceaccount")
	if err := os.MkdirAll(a.Credentials, 0o755); err != nil {
		t.Fatal(err)
	}
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	write(t, filepath.Join(a.Credentials, "ca.crt"), string(ca))
	write(t, filepath.Join(a.Credentials, "token"), token)
	write(t, filepath.Join(a.Credentials, "namespace"), "default")
	return a
}

// SetDown makes every request fail with 503, as an API server that is
// unreachable or overloaded.
func (a *LeaseAPI) SetDown(down bool) {
	a.mu.Lock()
	a.down = down
	a.mu.Unlock()
}

// Holder is the lease's holder, "" when it has none or does not exist.
func (a *LeaseAPI) Holder(name string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	spec, _ := a.leases[name]["spec"].(map[string]any)
	h, _ := spec["holderIdentity"].(string)
	return h
}

func (a *LeaseAPI) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.Requests[r.Method]++
	if a.down {
		status(w, http.StatusServiceUnavailable, "down for the test")
		return
	}
	const prefix = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
	name, ok := strings.CutPrefix(r.URL.Path, prefix)
	if !ok {
		status(w, http.StatusNotFound, "not a lease")
		return
	}
	name = strings.TrimPrefix(name, "/")
	var body map[string]any
	if r.Method != http.MethodGet {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			status(w, http.StatusBadRequest, err.Error())
			return
		}
		meta, _ := body["metadata"].(map[string]any)
		if name == "" {
			name, _ = meta["name"].(string)
		}
	}
	cur, exists := a.leases[name]
	switch {
	case r.Method == http.MethodGet && !exists, r.Method == http.MethodPut && !exists:
		status(w, http.StatusNotFound, "leases \""+name+"\" not found")
	case r.Method == http.MethodGet:
		reply(w, http.StatusOK, cur)
	case r.Method == http.MethodPost && exists:
		status(w, http.StatusConflict, "leases \""+name+"\" already exists")
	case r.Method == http.MethodPut && version(body) != version(cur):
		status(w, http.StatusConflict, "the object has been modified; please apply your changes to the latest version and try again")
	case r.Method == http.MethodPost || r.Method == http.MethodPut:
		a.version++
		body["metadata"].(map[string]any)["resourceVersion"] = strconv.Itoa(a.version)
		a.leases[name] = body
		reply(w, map[bool]int{true: http.StatusCreated, false: http.StatusOK}[r.Method == http.MethodPost], body)
	default:
		status(w, http.StatusMethodNotAllowed, r.Method)
	}
}

func version(obj map[string]any) string {
	meta, _ := obj["metadata"].(map[string]any)
	v, _ := meta["resourceVersion"].(string)
	return v
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func status(w http.ResponseWriter, code int, msg string) {
	reply(w, code, map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": msg, "code": code})
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func randomToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Plant sets the lease as a pod that died would leave it: held, renewed
// now, never again.
func (a *LeaseAPI) Plant(name, holder string, seconds int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.version++
	a.leases[name] = map[string]any{"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
		"metadata": map[string]any{"name": name, "namespace": "default", "resourceVersion": strconv.Itoa(a.version)},
		"spec":     map[string]any{"holderIdentity": holder, "leaseDurationSeconds": seconds}}
}
