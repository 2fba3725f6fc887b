package chart

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// helmModule is the Helm the tests run: built from the module cache with
// the proxy off, so that the tests need no network.
const helmModule = "helm.sh/helm/v4/cmd/helm@v4.3.2"

var (
	helmOnce sync.Once
	helmBin  string
	helmErr  error
)

// helm finds Helm's binary once per test binary, then runs it. `go run`
// caches the executables it builds (Go 1.24): `go run -exec echo` prints
// where, and after the first build it is in the build cache, so that every
// later run costs nothing. The module cache is the only proxy: no network
// at test time. Without Helm in the module cache the test skips, or fails
// under CI.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	helmOnce.Do(func() { helmBin, helmErr = findHelm() })
	if helmErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(helmErr)
		}
		t.Skip(helmErr)
	}
	cmd := exec.Command(helmBin, args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("helm %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

func findHelm() (string, error) {
	modcache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		return "", err
	}
	proxy := "file://" + filepath.Join(strings.TrimSpace(string(modcache)), "cache", "download")
	for range 2 { // the first build runs from a temporary directory, then is cached
		cmd := exec.Command("go", "run", "-exec", "/bin/echo", helmModule)
		cmd.Dir = os.TempDir() // outside the module: its go.mod does not pin Helm's dependencies
		cmd.Env = append(os.Environ(), "GOPROXY="+proxy, "GOSUMDB=off")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("go run %s from the module cache alone (GOPROXY=%s): %v\n%s", helmModule, proxy, err, out)
		}
		if bin := strings.TrimSpace(string(out)); filepath.IsAbs(bin) {
			if _, err := os.Stat(bin); err == nil {
				return bin, nil
			}
		}
	}
	return "", fmt.Errorf("go run -exec echo %s: no cached executable", helmModule)
}

func chartDir(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "deploy", "helm", "clamgate")
	if _, err := os.Stat(filepath.Join(dir, "Chart.yaml")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// valueSets are the values the chart is rendered with besides its
// defaults: each a values file's content.
var valueSets = map[string]string{
	"default": "",
	"concurrent, big database, fixed replicas, hostPath": `
replicas: 3
autoscaling: {enabled: false}
database:
  sizeMiB: 900
  reload: concurrent
  volume: {hostPath: {path: /srv/clamav, type: Directory}}
updater: {enabled: false}
networkPolicy: {namespaces: [mail, proxy], cidrs: [10.20.0.0/16, "fd00::/8"]}
`,
	"staggered reloads": `
stagger: {enabled: true, apiServerCIDRs: [10.96.0.1/32]}
networkPolicy: {namespaces: [mail]}
`,
	"one front, pinned image, small database": `
image: {repository: registry.example.org/clamgate/pool, digest: "sha256:` + strings.Repeat("ab", 32) + `"}
fronts:
  clamd: {enabled: true, port: 3311}
  icap: {enabled: false, port: 11344}
  http: {enabled: false, port: 8443}
database: {sizeMiB: 10, reload: frugal}
policies:
  edge:
    tlsIdentities: ["uri:spiffe://example.org/edge/*"]
updater: {privateMirror: "http://mirror.internal/clamav", pvc: {create: true, storageClassName: nfs, size: 5Gi}}
podDisruptionBudget: {enabled: false}
networkPolicy: {enabled: false}
`,
}

// writeValues writes a values file for --values, under a directory whose
// name has no comma (helm splits --values at commas; t.TempDir is named
// after the test).
func writeValues(t *testing.T, content string) []string {
	if content == "" {
		return nil
	}
	dir, err := os.MkdirTemp("", "clamgate-chart-values-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := filepath.Join(dir, "values.yaml")
	if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"--values", f}
}

func TestLint(t *testing.T) {
	for name, values := range valueSets {
		t.Run(name, func(t *testing.T) {
			out, err := helm(t, append([]string{"lint", "--strict", chartDir(t)}, writeValues(t, values)...)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// rendered is the chart rendered with some values, decoded.
type rendered struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	pvcs        map[string]*corev1.PersistentVolumeClaim
	netpols     []*networkingv1.NetworkPolicy
	pdbs        []*policyv1.PodDisruptionBudget
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	accounts    []*corev1.ServiceAccount
	roles       []*rbacv1.Role
	bindings    []*rbacv1.RoleBinding
	docs        []string
}

// render runs helm template and decodes every object strictly into its
// API type: an unknown or misspelled field fails, as does a kind the
// test does not know.
func render(t *testing.T, values string) *rendered {
	t.Helper()
	out, err := helm(t, append([]string{"template", "pool", chartDir(t), "--namespace", "scan"}, writeValues(t, values)...)...)
	if err != nil {
		t.Fatal(err)
	}
	r := &rendered{deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{},
		configMaps: map[string]*corev1.ConfigMap{}, pvcs: map[string]*corev1.PersistentVolumeClaim{}}
	for _, doc := range splitDocs(out) {
		var meta struct{ APIVersion, Kind string }
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("%v in\n%s", err, doc)
		}
		r.docs = append(r.docs, doc)
		var obj any
		store := func() {}
		switch meta.APIVersion + " " + meta.Kind {
		case "apps/v1 Deployment":
			d := &appsv1.Deployment{}
			obj, store = d, func() { r.deployments[d.Name] = d }
		case "v1 Service":
			s := &corev1.Service{}
			obj, store = s, func() { r.services[s.Name] = s }
		case "v1 ConfigMap":
			c := &corev1.ConfigMap{}
			obj, store = c, func() { r.configMaps[c.Name] = c }
		case "v1 PersistentVolumeClaim":
			c := &corev1.PersistentVolumeClaim{}
			obj, store = c, func() { r.pvcs[c.Name] = c }
		case "networking.k8s.io/v1 NetworkPolicy":
			n := &networkingv1.NetworkPolicy{}
			obj, store = n, func() { r.netpols = append(r.netpols, n) }
		case "policy/v1 PodDisruptionBudget":
			p := &policyv1.PodDisruptionBudget{}
			obj, store = p, func() { r.pdbs = append(r.pdbs, p) }
		case "autoscaling/v2 HorizontalPodAutoscaler":
			h := &autoscalingv2.HorizontalPodAutoscaler{}
			obj, store = h, func() { r.hpas = append(r.hpas, h) }
		case "v1 ServiceAccount":
			a := &corev1.ServiceAccount{}
			obj, store = a, func() { r.accounts = append(r.accounts, a) }
		case "rbac.authorization.k8s.io/v1 Role":
			x := &rbacv1.Role{}
			obj, store = x, func() { r.roles = append(r.roles, x) }
		case "rbac.authorization.k8s.io/v1 RoleBinding":
			x := &rbacv1.RoleBinding{}
			obj, store = x, func() { r.bindings = append(r.bindings, x) }
		default:
			t.Fatalf("the chart renders %s %s, which this test does not decode", meta.APIVersion, meta.Kind)
		}
		if err := decodeStrict(doc, obj); err != nil {
			t.Fatalf("%s does not decode strictly: %v\n%s", meta.Kind, err, doc)
		}
		store()
	}
	return r
}

// decodeStrict decodes as the API server does: field names matched
// case-sensitively (encoding/json, under sigs.k8s.io/yaml's
// UnmarshalStrict, would take readOnlyRootFileSystem for
// readOnlyRootFilesystem), unknown and duplicate fields refused.
func decodeStrict(doc string, obj any) error {
	js, err := yaml.YAMLToJSONStrict([]byte(doc))
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(js, obj)
	return errors.Join(append(strict, err)...)
}

// splitDocs splits a YAML stream into its non-empty documents.
func splitDocs(s string) []string {
	var docs []string
	for _, d := range strings.Split("\n"+s, "\n---") {
		body := strings.TrimSpace(stripComments(d))
		if body != "" {
			docs = append(docs, d)
		}
	}
	return docs
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
