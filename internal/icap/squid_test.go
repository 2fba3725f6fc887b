package icap_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"clamgate/internal/testenv"
)

// origin serves the test objects at the pace of a real (if fast) web
// server. An instantaneous loopback origin trips squid 5.7's bug 5352,
// where a RESPMOD transaction stalls once the origin fills squid's buffer
// faster than any ICAP service drains it (c-icap stalls the same way).
func origin(t *testing.T, objects map[string][]byte) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := objects[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Header().Set("Content-Type", "application/octet-stream")
		for len(data) > 0 {
			n := min(len(data), 16<<10)
			w.Write(data[:n])
			w.(http.Flusher).Flush()
			data = data[n:]
			time.Sleep(time.Millisecond)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

type squid struct {
	proxy   string
	icapLog string
}

// startSquid runs a private squid that sends every response through the
// ICAP service at icapAddr, with bypass off (a failed scan is an error).
func startSquid(t *testing.T, icapAddr string) *squid {
	t.Helper()
	return startSquidWith(t, fmt.Sprintf("icap_enable on\nicap_service avscan respmod_precache icap://%s/avscan bypass=off\nadaptation_access avscan allow all\n", icapAddr))
}

// startSquidService is startSquid for a service URL and its options
// (icaps://… tls-cert=…).
func startSquidService(t *testing.T, service string) *squid {
	t.Helper()
	return startSquidWith(t, fmt.Sprintf("icap_enable on\nicap_service avscan respmod_precache %s bypass=off\nadaptation_access avscan allow all\n", service))
}

// startSquidWith runs a private squid with icapConf as its ICAP settings.
func startSquidWith(t *testing.T, icapConf string) *squid {
	t.Helper()
	bin, err := exec.LookPath("squid")
	if err != nil {
		bin = "/usr/sbin/squid"
	}
	dir := testenv.TempDir(t)
	if u, err := user.Lookup("proxy"); err == nil { // squid drops to it
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		os.Chown(dir, uid, gid)
	}
	addr := testenv.FreePort(t)
	s := &squid{proxy: "http://" + addr, icapLog: filepath.Join(dir, "icap.log")}
	conf := fmt.Sprintf(`http_port %s
pid_filename %[2]s/squid.pid
cache_log %[2]s/cache.log
access_log stdio:%[2]s/access.log
coredump_dir %[2]s
cache deny all
pinger_enable off
shutdown_lifetime 0 seconds
http_access allow localhost
http_access deny all
logformat icapstatus %%icap::rm %%icap::Hs %%icap::ru
icap_log stdio:%[2]s/icap.log icapstatus
%[3]s`, addr, dir, icapConf)
	confPath := filepath.Join(dir, "squid.conf")
	os.WriteFile(confPath, []byte(conf), 0o644)
	cmd := exec.Command(bin, "-N", "-f", confPath)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("squid: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return s
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "cache.log"))
			t.Fatalf("squid did not start:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *squid) get(t *testing.T, target string) (int, []byte) {
	t.Helper()
	proxy, _ := url.Parse(s.proxy)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}, Timeout: 30 * time.Second}
	resp, err := client.Get(target)
	if err != nil {
		t.Fatalf("GET %s through squid: %v", target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s through squid: reading the body: %v", target, err)
	}
	return resp.StatusCode, body
}

// TestSquid fetches through a real squid whose RESPMOD service is the
// gateway: clean objects arrive intact, EICAR becomes the block page, and
// with clamd down squid reports the failure instead of the object.
func TestSquid(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	host, port := icapGateway(t, c, "")
	large := make([]byte, 3<<20)
	rand.Read(large)
	objects := map[string][]byte{
		"/small.txt": []byte(strings.Repeat("a small clean page\n", 500)),
		"/large.bin": large,
		"/eicar.com": []byte(testenv.EICAR),
	}
	base := origin(t, objects)
	sq := startSquid(t, net.JoinHostPort(host, port))

	for _, name := range []string{"/small.txt", "/large.bin"} {
		code, body := sq.get(t, base+name)
		if code != 200 || !bytes.Equal(body, objects[name]) {
			t.Errorf("%s: status %d, %d of %d bytes, identical=%v", name, code, len(body), len(objects[name]), bytes.Equal(body, objects[name]))
		}
	}
	code, body := sq.get(t, base+"/eicar.com?<b>")
	if code != 403 || !bytes.Contains(body, []byte(testenv.EicarThreat)) || !bytes.Contains(body, []byte("/eicar.com?&lt;b&gt;")) {
		t.Errorf("EICAR: status %d:\n%s", code, body)
	}
	// squid offers Allow: 204 only for bodies it can keep a copy of: both
	// the 204 and the echo path must have been taken.
	log, _ := os.ReadFile(sq.icapLog)
	for _, want := range []string{"RESPMOD 204 ", "RESPMOD 200 "} {
		if !strings.Contains(string(log), want) {
			t.Errorf("squid's ICAP log has no %q:\n%s", want, log)
		}
	}

	c.Kill()
	code, body = sq.get(t, base+"/small.txt")
	if code == 200 || bytes.Contains(body, objects["/small.txt"][:100]) {
		t.Errorf("clamd down: squid delivered the object (status %d)", code)
	}
	t.Logf("clamd down: squid answered %d", code)
}
