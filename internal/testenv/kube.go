package testenv

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// KubeAPIVersion is the kube-apiserver the tests run, built by
// scripts/kube-apiserver.sh from the release matching go.mod's k8s.io/api.
const KubeAPIVersion = "v1.37.2"

// KubeAPI is a real kube-apiserver on loopback, backed by a real etcd
// (Debian's etcd-server), with RBAC on and static bearer tokens.
type KubeAPI struct {
	URL        string // https://127.0.0.1:PORT
	Host, Port string // as KUBERNETES_SERVICE_HOST and _PORT give them to a pod
	CAFile     string // the server's self-signed certificate (and its CA)
	Admin      string // a token in system:masters
	dir        string
	tokens     map[string]string // service account → token
}

// kubeAPIBinary is the cached build, or KUBE_APISERVER.
func kubeAPIBinary(t testing.TB) string {
	if p := os.Getenv("KUBE_APISERVER"); p != "" {
		return p
	}
	p := "/var/cache/clamgate-kube/kube-apiserver-" + KubeAPIVersion
	if _, err := os.Stat(p); err != nil {
		MissingPeer(t, "kube-apiserver "+KubeAPIVersion, "run scripts/kube-apiserver.sh (builds it into /var/cache/clamgate-kube), or set KUBE_APISERVER")
	}
	return p
}

// StartKubeAPI starts etcd and kube-apiserver for the test, with a token
// for each service account named (in namespace "default"), and waits until
// the API is ready. Both stop when the test ends.
func StartKubeAPI(t testing.TB, serviceAccounts ...string) *KubeAPI {
	t.Helper()
	bin := kubeAPIBinary(t)
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		MissingPeer(t, "etcd", "apt-get install etcd-server")
	}
	dir := TempDir(t)
	k := &KubeAPI{dir: dir, Admin: randomToken(), tokens: map[string]string{}}
	clientURL, peerURL := "http://"+freePort(t), "http://"+freePort(t)
	startProcess(t, dir, "etcd", etcd, "--name", "default", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "default="+peerURL)
	csv := fmt.Sprintf("%s,admin,admin,system:masters\n", k.Admin)
	for i, sa := range serviceAccounts {
		k.tokens[sa] = randomToken()
		csv += fmt.Sprintf("%s,system:serviceaccount:default:%s,sa-%d,\"system:serviceaccounts,system:serviceaccounts:default\"\n", k.tokens[sa], sa, i)
	}
	write(t, filepath.Join(dir, "tokens.csv"), csv)
	writeSigningKey(t, dir)
	addr := freePort(t)
	k.Host, k.Port, _ = net.SplitHostPort(addr)
	k.URL = "https://" + addr
	k.CAFile = filepath.Join(dir, "certs", "apiserver.crt")
	startProcess(t, dir, "kube-apiserver", bin, "--etcd-servers", clientURL,
		"--bind-address", k.Host, "--advertise-address", k.Host, "--secure-port", k.Port,
		"--cert-dir", filepath.Join(dir, "certs"), "--token-auth-file", filepath.Join(dir, "tokens.csv"),
		"--authorization-mode", "RBAC", "--service-cluster-ip-range", "10.96.0.0/24",
		"--endpoint-reconciler-type", "none", // it refuses a loopback advertise address otherwise
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file", filepath.Join(dir, "sa.key"))
	k.waitReady(t)
	return k
}

func (k *KubeAPI) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		code, body, err := k.Do(http.MethodGet, "/readyz", k.Admin, nil)
		if err == nil && code == http.StatusOK {
			// The default namespace is made by a controller after start.
			if code, _, _ := k.Do(http.MethodGet, "/api/v1/namespaces/default", k.Admin, nil); code == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("kube-apiserver not ready after a minute: %d %s %v\n%s", code, body, err, tail(filepath.Join(k.dir, "kube-apiserver.log")))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Do sends one request with the token; body is JSON.
func (k *KubeAPI) Do(method, path, token string, body []byte) (int, []byte, error) {
	pem, err := os.ReadFile(k.CAFile)
	if err != nil {
		return 0, nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	req, err := http.NewRequest(method, k.URL+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// Apply creates an object as the admin (JSON), failing the test otherwise.
func (k *KubeAPI) Apply(t testing.TB, collection, object string) {
	t.Helper()
	code, body, err := k.Do(http.MethodPost, collection, k.Admin, []byte(object))
	if err != nil || code != http.StatusCreated {
		t.Fatalf("POST %s: %d %s %v", collection, code, body, err)
	}
}

// Credentials writes what Kubernetes mounts at
// /var/run/secrets/kubernetes.io/serviceaccount for the service account:
// token, ca.crt and namespace; it returns the directory.
func (k *KubeAPI) Credentials(t testing.TB, serviceAccount string) string {
	t.Helper()
	dir := filepath.Join(k.dir, "sa-"+serviceAccount)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(k.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "token"), k.tokens[serviceAccount])
	write(t, filepath.Join(dir, "ca.crt"), string(ca))
	write(t, filepath.Join(dir, "namespace"), "default")
	return dir
}

func startProcess(t testing.TB, dir, name, bin string, args ...string) {
	t.Helper()
	log, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		log.Close()
	})
}

func writeSigningKey(t testing.TB, dir string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "sa.key"), string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})))
	write(t, filepath.Join(dir, "sa.pub"), string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})))
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	return string(b[max(0, len(b)-3000):])
}

// GrantLease gives the service account the RBAC the Helm chart gives the
// pods: create leases, and get and update the one named.
func (k *KubeAPI) GrantLease(t testing.TB, serviceAccount, lease string) {
	t.Helper()
	name := "lease-" + serviceAccount + "-" + lease
	k.Apply(t, "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles", fmt.Sprintf(`{"apiVersion":"rbac.authorization.k8s.io/v1",
"kind":"Role","metadata":{"name":%q},"rules":[
{"apiGroups":["coordination.k8s.io"],"resources":["leases"],"verbs":["create"]},
{"apiGroups":["coordination.k8s.io"],"resources":["leases"],"resourceNames":[%q],"verbs":["get","update"]}]}`, name, lease))
	k.Apply(t, "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", fmt.Sprintf(`{"apiVersion":"rbac.authorization.k8s.io/v1",
"kind":"RoleBinding","metadata":{"name":%q},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":%q},
"subjects":[{"kind":"ServiceAccount","name":%q,"namespace":"default"}]}`, name, name, serviceAccount))
}
