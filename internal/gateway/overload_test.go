package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/testenv"

	gomilter "github.com/d--j/go-milter"
)

// slowSignatures make clamd scan random data at about 8 MB/s per core on
// this class of machine: enough to keep its threads busy for seconds
// without files of gigabytes.
const slowSignatures = 30000

func randomData(n int, seed uint64) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, seed+1))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// TestHealthDuringOverload keeps every scan slot busy with slow scans, some
// of which exceed the job timeout, and checks all along that PING through
// the gateway answers, that /readyz stays 200, and that the backend is
// never taken out: a scan's timeout fails that scan only, and clamd keeps
// a thread free for health checks (max_jobs = MaxThreads, scans get one
// fewer).
func TestHealthDuringOverload(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{MaxThreads: 3, SlowSignatures: slowSignatures, StreamMaxLength: "40M"})
	dir := testenv.TempDir(t)
	proxy, mail := filepath.Join(dir, "proxy.sock"), filepath.Join(dir, "mail.sock")
	httpAddr := testenv.FreePort(t)
	gwy := testenv.StartGateway(t, mustParse(t, fmt.Sprintf(`
[backend]
address = "unix:%s"
health_interval = "200ms"
timeout = "3s"
max_jobs = 3
stream_max_length = "40M"
[server]
http = "tcp:%s"
[[listener]]
address = "unix:%s"
policy = "proxy"
mode = "0666"
[[listener]]
address = "unix:%s"
policy = "mail"
mode = "0666"
[policy.proxy]
[policy.mail]
`, c.Socket, httpAddr, proxy, mail)))
	waitStatus(t, "http://"+httpAddr+"/readyz", 200)
	data := randomData(24<<20, 1)
	ctx, stop := context.WithTimeout(context.Background(), 20*time.Second)
	defer stop()
	var flood sync.WaitGroup
	var mu sync.Mutex
	replies := map[string]int{}
	for range 4 {
		flood.Go(func() {
			gw, _ := clamd.New("unix:"+proxy, time.Minute)
			for ctx.Err() == nil {
				reply, err := gw.Instream(context.Background(), bytes.NewReader(data))
				mu.Lock()
				replies[fmt.Sprint(reply, err)]++
				mu.Unlock()
			}
		})
	}
	gw, _ := clamd.New("unix:"+mail, 30*time.Second)
	var notReady, pingFailed, checks int
	for ctx.Err() == nil {
		if code := status(t, "http://"+httpAddr+"/readyz"); code != 200 {
			notReady++
			t.Logf("/readyz %d", code)
		}
		if reply, err := gw.Command(context.Background(), "PING"); reply != "PONG" {
			pingFailed++
			t.Logf("PING: %q %v", reply, err)
		}
		checks++
		time.Sleep(250 * time.Millisecond)
	}
	flood.Wait()
	t.Logf("flood replies: %v; %d health checks", replies, checks)
	if notReady > 0 || pingFailed > 0 {
		t.Errorf("under overload: /readyz not 200 %d times, PING failed %d times, of %d", notReady, pingFailed, checks)
	}
	if strings.Contains(gwy.Log.String(), "taken out") {
		t.Error("the backend was taken out while it was only busy")
	}
}

// waitScanning waits until clamd is scanning something (STATS lists a
// FILDES job: the gateway hands spooled streams over as descriptors).
func waitScanning(t *testing.T, c *testenv.Clamd) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		stats, _ := c.Client("unix").Command(context.Background(), "STATS")
		if strings.Contains(stats, "FILDES") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("clamd never started the slow scan:\n%s", stats)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metricValue reads one series from /metrics (0 when absent).
func metricValue(t *testing.T, base, series string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(get(t, base+"/metrics"))
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func waitSeries(t *testing.T, base, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for metricValue(t, base, series) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v", series, metricValue(t, base, series), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// overloadGateway starts a slow clamd and a gateway with one scan slot,
// with a clamd-protocol listener and an ICAP one for policy "p".
func overloadGateway(t *testing.T) (c *testenv.Clamd, sock, icapAddr, base string) {
	t.Helper()
	c = testenv.StartClamd(t, testenv.ClamdOptions{MaxThreads: 2, SlowSignatures: slowSignatures, StreamMaxLength: "40M"})
	dir := testenv.TempDir(t)
	sock = filepath.Join(dir, "gw.sock")
	icapAddr, httpAddr := testenv.FreePort(t), testenv.FreePort(t)
	testenv.StartGateway(t, mustParse(t, fmt.Sprintf(`
[backend]
address = "unix:%s"
max_jobs = 2
reserve = 0
stream_max_length = "40M"
[server]
http = "tcp:%s"
[[listener]]
address = "unix:%s"
policy = "p"
mode = "0666"
[[listener]]
address = "tcp:%s"
protocol = "icap"
policy = "p"
[[listener]]
address = "unix:%s"
protocol = "milter"
policy = "p"
mode = "0666"
[policy.p]
`, c.Socket, httpAddr, sock, icapAddr, filepath.Join(dir, "milter.sock"))))
	base = "http://" + httpAddr
	waitStatus(t, base+"/readyz", 200)
	return c, sock, icapAddr, base
}

// sendInstream sends a whole INSTREAM request on a new connection and
// returns the connection, left open for the verdict.
func sendInstream(t *testing.T, sock string, data []byte) net.Conn {
	t.Helper()
	conn, err := net.Dial("unix", sock)
	must(t, err)
	w := bufio.NewWriter(conn)
	w.Write(instream("z", data))
	must(t, w.Flush())
	return conn
}

// TestClientGoneClamd: a clamd-protocol client that disconnects while its
// job waits for the only slot loses the job at once; one that disconnects
// while its job runs has it cancelled. Both are counted, and the slot goes
// to the next client.
func TestClientGoneClamd(t *testing.T) {
	c, sock, _, base := overloadGateway(t)
	running := sendInstream(t, sock, randomData(24<<20, 2))
	waitScanning(t, c)
	queued := sendInstream(t, sock, []byte("queued then gone"))
	waitSeries(t, base, `clamgate_queue_depth{client="p"}`, 1)
	queued.Close()
	waitSeries(t, base, `clamgate_jobs_abandoned_total{client="p",state="queued"}`, 1)
	waitSeries(t, base, `clamgate_queue_depth{client="p"}`, 0)
	running.Close()
	waitSeries(t, base, `clamgate_jobs_abandoned_total{client="p",state="running"}`, 1)
	gw, _ := clamd.New("unix:"+sock, 30*time.Second)
	if reply, err := gw.Instream(context.Background(), strings.NewReader(testenv.EICAR)); !strings.Contains(reply, "FOUND") {
		t.Fatalf("next scan after the abandoned ones: %q %v", reply, err)
	}
}

// TestClientGoneICAP: the same for an ICAP client (squid closes the
// connection when the download it was scanning is aborted).
func TestClientGoneICAP(t *testing.T) {
	c, sock, icapAddr, base := overloadGateway(t)
	running := sendInstream(t, sock, randomData(24<<20, 3))
	waitScanning(t, c)
	body := "queued then gone"
	req := fmt.Sprintf("RESPMOD icap://%s/avscan ICAP/1.0\r\nHost: %s\r\nAllow: 204\r\nEncapsulated: res-hdr=0, res-body=38\r\n\r\n"+
		"HTTP/1.1 200 OK\r\nContent-Type: x/y\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", icapAddr, icapAddr, len(body), body)
	conn, err := net.Dial("tcp", icapAddr)
	must(t, err)
	_, err = conn.Write([]byte(req))
	must(t, err)
	waitSeries(t, base, `clamgate_queue_depth{client="p"}`, 1)
	conn.Close()
	waitSeries(t, base, `clamgate_jobs_abandoned_total{client="p",state="queued"}`, 1)
	running.Close()
	waitSeries(t, base, `clamgate_jobs_abandoned_total{client="p",state="running"}`, 1)
}

// TestClientGoneMilter: the same for an MTA that gives up on a message
// (closes the milter connection) while its scan waits for the slot.
func TestClientGoneMilter(t *testing.T) {
	c, sock, _, base := overloadGateway(t)
	running := sendInstream(t, sock, randomData(24<<20, 5))
	waitScanning(t, c)
	s, err := gomilter.NewClient("unix", filepath.Join(filepath.Dir(sock), "milter.sock"),
		gomilter.WithReadTimeout(time.Minute)).Session(gomilter.NewMacroBag())
	must(t, err)
	milterUpToEnd(t, s, "queued then gone")
	go s.End() // the verdict never comes: the MTA goes away first
	waitSeries(t, base, `clamgate_queue_depth{client="p"}`, 1)
	s.Close()
	waitSeries(t, base, `clamgate_jobs_abandoned_total{client="p",state="queued"}`, 1)
	running.Close()
	waitSeries(t, base, `clamgate_jobs_abandoned_total{client="p",state="running"}`, 1)
}

// TestTrickleHoldsNoSlot (issue 14, item 6): an authorised client that
// sends its INSTREAM one byte at a time holds no scan slot: with a single
// slot (max_jobs = 1), other clients' scans go on meanwhile.
func TestTrickleHoldsNoSlot(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	sock := filepath.Join(testenv.TempDir(t), "gw.sock")
	testenv.StartGateway(t, mustParse(t, fmt.Sprintf(`
[backend]
address = "unix:%s"
max_jobs = 1
reserve = 0
[[listener]]
address = "unix:%s"
policy = "p"
mode = "0666"
[policy.p]
`, c.Socket, sock)))
	conn, err := net.Dial("unix", sock)
	must(t, err)
	defer conn.Close()
	must(t, writeAll(conn, append([]byte("zINSTREAM\x00"), chunk([]byte("trickle"))[:6]...)))
	stop := make(chan struct{})
	defer close(stop)
	go func() { // one more byte a second, never the end
		for _, b := range chunk([]byte("trickle"))[6:] {
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
				conn.Write([]byte{b})
			}
		}
	}()
	gw, _ := clamd.New("unix:"+sock, 30*time.Second)
	for range 3 {
		if reply, err := gw.Instream(context.Background(), strings.NewReader(testenv.EICAR)); !strings.Contains(reply, "FOUND") {
			t.Fatalf("scan beside a trickling client: %q %v", reply, err)
		}
	}
}

func writeAll(c net.Conn, p []byte) error {
	_, err := c.Write(p)
	return err
}
