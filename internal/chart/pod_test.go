package chart

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"clamgate/internal/clamd"
	"clamgate/internal/testenv"
)

// TestPodRuns runs the chart's pod for real: the Deployment and ConfigMap
// helm renders, and a TLS Secret, under `podman kube play`, with the
// image deploy/image/build-pool.sh builds from this tree and the host's
// clamd. clamd gets its database from a host directory mounted read-only
// (standing for the updater's shared volume). It checks that the pod is
// not Ready while the database is missing and becomes Ready once it is
// there; that EICAR is found and a clean file passes through the clamd
// protocol on TLS with a client certificate, through ICAPS and through
// the HTTP API; that a certificate no policy names is refused; and that a
// database change on the shared volume is served after a frugal reload
// during which /readyz says not ready. Everything it creates (pod,
// containers, volumes, secret, image) is removed, even on failure.
// About 1-3 minutes; root, podman, runc and catatonit needed.
func TestPodRuns(t *testing.T) {
	requirePodman(t)
	repo := filepath.Join(chartDir(t), "..", "..", "..")
	id := fmt.Sprintf("cgchart%d", os.Getpid())
	work := testenv.TempDir(t)
	os.Chmod(work, 0o755)

	bin := filepath.Join(work, "clamgate")
	run(t, repo, "go", "build", "-o", bin, "./cmd/clamgate")
	image := "localhost/clamgate-chart-test/pool:" + id
	t.Cleanup(func() { exec.Command("podman", "rmi", "-f", image).Run() })
	run(t, repo, "bash", "deploy/image/build-pool.sh", image, bin)

	pki := filepath.Join(work, "tls")
	run(t, work, bin, "tls", "new-ca", "--dir", pki)
	run(t, work, bin, "tls", "issue", "--dir", pki, "--id", "dns:pool.clamgate.test", "--name", "server")
	run(t, work, bin, "tls", "issue", "--dir", pki, "--id", "dns:mx1.example.org", "--name", "mx1")
	run(t, work, bin, "tls", "issue", "--dir", pki, "--id", "dns:intruder.example.org", "--name", "intruder")

	db := filepath.Join(work, "db")
	must(t, os.Mkdir(db, 0o755))
	kube := podYAML(t, id, image, db, pki)
	kubeFile := filepath.Join(work, "kube.yaml")
	must(t, os.WriteFile(kubeFile, kube.yaml, 0o600))
	t.Cleanup(func() { kube.remove(t, kubeFile) })
	conf := filepath.Join(work, "containers.conf")
	// This machine's runtime and limits (crun fails on its cgroup layout).
	must(t, os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n[engine]\nruntime = \"runc\"\n"), 0o644))
	play := exec.Command("podman", "kube", "play", kubeFile)
	play.Env = append(os.Environ(), "CONTAINERS_CONF="+conf)
	if out, err := play.CombinedOutput(); err != nil {
		t.Fatalf("podman kube play: %v\n%s", err, out)
	}
	ip := podIP(t, kube.pod)
	t.Logf("pod %s at %s", kube.pod, ip)
	defer func() {
		if t.Failed() {
			for _, c := range []string{"clamgate", "clamd"} {
				out, _ := exec.Command("podman", "logs", "--tail", "30", kube.pod+"-"+c).CombinedOutput()
				t.Logf("%s's last lines:\n%s", c, out)
			}
			out, _ := exec.Command("podman", "ps", "-a", "--filter", "pod="+kube.pod, "--format", "{{.Names}} {{.Status}}").CombinedOutput()
			t.Logf("containers:\n%s", out)
			for _, v := range kube.emptyDirs {
				mp, _ := exec.Command("podman", "volume", "inspect", "--format", "{{.Mountpoint}}", v).Output()
				out, _ := exec.Command("ls", "-lan", strings.TrimSpace(string(mp))).CombinedOutput()
				t.Logf("%s:\n%s", v, out)
			}
		}
	}()
	readyz := "http://" + net.JoinHostPort(ip, "9310") + "/readyz"

	// No database yet: clamd exits and is restarted; the pod is not Ready.
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if code, body := get(readyz); code == 200 {
			t.Fatalf("/readyz 200 without a database: %q", body)
		}
	}
	freshclamWrite(t, db, "eicar.ndb", "Eicar-Test-Signature:0:*:"+fmt.Sprintf("%x", testenv.EICAR)+"\n")
	start := time.Now()
	waitReady(t, readyz, 90*time.Second)
	t.Logf("Ready %v after the database arrived", time.Since(start).Round(time.Millisecond))

	client := tlsClient(t, pki, "mx1")
	clean := fmt.Sprintf("a clean file %d", time.Now().UnixNano())

	// The clamd protocol on TLS, with the client's certificate.
	gw := clamdClient(t, ip, client)
	expect(t, "clamd protocol EICAR", instream(gw, testenv.EICAR), "stream: Eicar-Test-Signature.UNOFFICIAL FOUND")
	expect(t, "clamd protocol clean", instream(gw, clean), "stream: OK")
	intruder := clamdClient(t, ip, tlsClient(t, pki, "intruder"))
	if reply := instream(intruder, testenv.EICAR); !strings.Contains(reply, "error") {
		t.Errorf("a certificate no policy names was served: %q", reply)
	}

	// ICAPS: squid's RESPMOD, a 403 page for EICAR, 204 for a clean body.
	icap := icapRespmod(t, ip, client, testenv.EICAR)
	expect(t, "ICAPS EICAR", icap, "ICAP/1.0 200")
	expect(t, "ICAPS EICAR's threat", icap, "X-Infection-Found: Type=0; Resolution=2; Threat=Eicar-Test-Signature")
	expect(t, "ICAPS clean", icapRespmod(t, ip, client, clean), "ICAP/1.0 204")

	// The HTTP API on TLS.
	expect(t, "HTTP EICAR", httpScan(t, ip, client, testenv.EICAR), `"verdict":"infected","threat":"Eicar-Test-Signature.UNOFFICIAL"`)
	expect(t, "HTTP clean", httpScan(t, ip, client, clean), `"verdict":"clean"`)

	// The updater writes a new signature into the shared volume: the gateway
	// reloads clamd frugally, the pod is not Ready for the hold, and the new
	// signature is served.
	var held atomic.Int64
	stop := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if code, body := get(readyz); code == 503 && strings.Contains(body, "held") {
				held.Add(1)
			}
		}
	}()
	marker := fmt.Sprintf("CLAMGATE-POD-%d", time.Now().UnixNano())
	freshclamWrite(t, db, "fresh.ndb", fmt.Sprintf("Clamgate.Pod:0:*:%x\n", marker))
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(instream(gw, "x "+marker+" y"), "Clamgate.Pod.UNOFFICIAL FOUND") {
		if time.Now().After(deadline) {
			close(stop)
			t.Fatal("the new signature on the shared volume was never served")
		}
		time.Sleep(200 * time.Millisecond)
	}
	close(stop)
	<-polled
	t.Logf("/readyz answered not ready (scans held) %d times during the reload", held.Load())
	if held.Load() == 0 {
		t.Error("/readyz never said not ready during the frugal reload")
	}
	waitReady(t, readyz, time.Minute)
}

func requirePodman(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("rootful podman needed")
	}
	for _, tool := range []string{"podman", "runc", "catatonit"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.MissingPeer(t, tool, "scripts/install-deps.sh --test")
		}
	}
}

// pod is what podman kube play makes of the rendered objects.
type pod struct {
	yaml      []byte
	pod       string   // the pod's name: the Deployment's, -pod-0
	emptyDirs []string // named volumes standing for the emptyDirs
	volumes   []string // every named volume kube play makes
}

// podYAML renders the chart's Deployment and ConfigMap for this test and
// adds the TLS Secret. Podman 4.3 makes a named volume of each emptyDir,
// by the volume's name and shared host-wide, so the test prefixes them
// with its id (a new volume takes the image directory's mode:
// build-pool.sh makes them 1777, as an emptyDir is world-writable).
// Stagger is off: podman has no API server for its Lease and no projected
// volume for its token (the Lease is tested against a real kube-apiserver
// in internal/kubelease and the gateway's stagger tests).
func podYAML(t *testing.T, id, image, db, pki string) *pod {
	repo, tag, _ := strings.Cut(image[strings.LastIndex(image, "/")+1:], ":")
	values := fmt.Sprintf(`
image: {repository: %s, tag: %s, pullPolicy: Never}
replicas: 1
autoscaling: {enabled: false}
updater: {enabled: false}
stagger: {enabled: false}
tls: {secretName: %s-tls}
database: {sizeMiB: 1, reload: frugal, volume: {hostPath: {path: %s, type: Directory}}}
policies:
  mail: {tlsIdentities: ["dns:mx1.example.org"], commands: [PING, VERSION, INSTREAM]}
`, image[:strings.LastIndex(image, "/")+1]+repo, tag, id, db)
	out, err := helm(t, append([]string{"template", id, chartDir(t), "--show-only", "templates/configmap.yaml", "--show-only", "templates/deployment.yaml"}, writeValues(t, values)...)...)
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	var cm corev1.ConfigMap
	for _, doc := range splitDocs(out) {
		if strings.Contains(doc, "kind: Deployment") {
			must(t, decodeStrict(doc, &d))
		} else {
			must(t, decodeStrict(doc, &cm))
		}
	}
	p := &pod{pod: d.Name + "-pod-0", volumes: []string{cm.Name}}
	spec := &d.Spec.Template.Spec
	for i, v := range spec.Volumes {
		if v.EmptyDir != nil {
			spec.Volumes[i].Name = id + "-" + v.Name
			p.emptyDirs = append(p.emptyDirs, spec.Volumes[i].Name)
			for _, c := range spec.Containers {
				for j, m := range c.VolumeMounts {
					if m.Name == v.Name {
						c.VolumeMounts[j].Name = spec.Volumes[i].Name
					}
				}
			}
		}
	}
	p.volumes = append(p.volumes, p.emptyDirs...)
	// Podman 4.3 mounts a Secret's data still base64-encoded (and ignores
	// stringData): the test gives the pod the Secret's three files from a
	// host directory instead, owned and moded as the chart's Secret volume
	// would make them (0440, the pod's group).
	secretDir := filepath.Join(pki, "secret")
	must(t, os.Mkdir(secretDir, 0o755))
	for key, file := range map[string]string{"tls.crt": "server.crt", "tls.key": "server.key", "ca.crt": "ca.crt"} {
		b, err := os.ReadFile(filepath.Join(pki, file))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(secretDir, key), b, 0o440))
		must(t, os.Chown(filepath.Join(secretDir, key), 0, 10000))
	}
	for i, v := range spec.Volumes {
		if v.Secret != nil {
			spec.Volumes[i].VolumeSource = corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: secretDir}}
		}
	}
	p.yaml = nil
	for _, obj := range []any{cm, d} {
		b, err := yaml.Marshal(obj)
		must(t, err)
		p.yaml = append(append(p.yaml, "---\n"...), b...)
	}
	return p
}

func (p *pod) remove(t *testing.T, kubeFile string) {
	exec.Command("podman", "kube", "down", kubeFile).Run()
	exec.Command("podman", "pod", "rm", "-f", "-t", "0", p.pod).Run()
	for _, v := range p.volumes {
		exec.Command("podman", "volume", "rm", "-f", v).Run()
	}
	if out, _ := exec.Command("podman", "pod", "exists", p.pod).CombinedOutput(); exec.Command("podman", "pod", "exists", p.pod).Run() == nil {
		t.Errorf("pod %s left behind %s", p.pod, out)
	}
}

func podIP(t *testing.T, name string) string {
	infra, err := exec.Command("podman", "pod", "inspect", "--format", "{{.InfraContainerID}}", name).Output()
	must(t, err)
	out, err := exec.Command("podman", "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", strings.TrimSpace(string(infra))).Output()
	must(t, err)
	ip := strings.Fields(string(out))
	if len(ip) == 0 {
		t.Fatalf("pod %s has no IP address", name)
	}
	return ip[0]
}

func tlsClient(t *testing.T, pki, name string) *tls.Config {
	cert, err := tls.LoadX509KeyPair(filepath.Join(pki, name+".crt"), filepath.Join(pki, name+".key"))
	must(t, err)
	ca, err := os.ReadFile(filepath.Join(pki, "ca.crt"))
	must(t, err)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	// The pod is reached by its IP; its certificate names the Service.
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "pool.clamgate.test", MinVersion: tls.VersionTLS13}
}

func clamdClient(t *testing.T, ip string, cfg *tls.Config) *clamd.Client {
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		return (&tls.Dialer{Config: cfg}).DialContext(ctx, network, address)
	}
	c, err := clamd.NewTLS("tls:"+net.JoinHostPort(ip, "3311"), 30*time.Second, dial)
	must(t, err)
	return c
}

func instream(c *clamd.Client, body string) string {
	reply, err := c.Instream(context.Background(), strings.NewReader(body))
	if err != nil {
		return "error: " + err.Error()
	}
	return reply
}

// icapRespmod sends squid's RESPMOD for an HTTP response carrying body,
// with Allow: 204, over TLS, and returns the ICAP status line and headers.
func icapRespmod(t *testing.T, ip string, cfg *tls.Config, body string) string {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", net.JoinHostPort(ip, "11344"), cfg)
	if err != nil {
		return "error: " + err.Error()
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	reqHdr := "GET /file HTTP/1.1\r\nHost: origin.example\r\n\r\n"
	resHdr := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", len(body))
	fmt.Fprintf(conn, "RESPMOD icaps://pool.clamgate.test:11344/avscan ICAP/1.0\r\nHost: pool.clamgate.test\r\nAllow: 204\r\nEncapsulated: req-hdr=0, res-hdr=%d, res-body=%d\r\n\r\n%s%s%x\r\n%s\r\n0\r\n\r\n",
		len(reqHdr), len(reqHdr)+len(resHdr), reqHdr, resHdr, len(body), body)
	var head strings.Builder
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		head.WriteString(line)
		if err != nil || line == "\r\n" {
			break
		}
	}
	return head.String()
}

func httpScan(t *testing.T, ip string, cfg *tls.Config, body string) string {
	c := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}
	resp, err := c.Post("https://"+net.JoinHostPort(ip, "8443")+"/v1/scan?name=f", "application/octet-stream", strings.NewReader(body))
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, b)
}

func expect(t *testing.T, what, got, want string) {
	t.Helper()
	if !strings.Contains(got, want) {
		t.Errorf("%s: %q, want %q", what, got, want)
	} else {
		t.Logf("%s: %s", what, strings.SplitN(strings.TrimSpace(got), "\n", 2)[0])
	}
}

func get(url string) (int, string) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitReady(t *testing.T, url string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		code, body := get(url)
		if code == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not 200 within %v: %d %q", within, code, body)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// freshclamWrite puts a database file in place as freshclam does: written
// whole under a temporary name, then renamed.
func freshclamWrite(t *testing.T, dir, name, content string) {
	tmp := filepath.Join(dir, "tmp."+name)
	must(t, os.WriteFile(tmp, []byte(content), 0o644))
	must(t, os.Rename(tmp, filepath.Join(dir, name)))
}

func run(t *testing.T, dir string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
