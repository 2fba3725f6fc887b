package gateway_test

// The spool attack of issue 23: a local user streams into every
// connection it may open, and the spool (an unlinked file per stream, on a
// file system shared with everyone) fills up.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/testenv"

	gomilter "github.com/d--j/go-milter"
	"golang.org/x/sys/unix"
)

// privateTmpfs mounts a tmpfs of size in a mount namespace of its own, held
// by a helper process, and returns its path as the test (root) reaches it,
// through /proc/PID/root. The mount goes away with the helper, whatever
// happens to the test; nothing else on the host ever sees it.
func privateTmpfs(t *testing.T, size string) string {
	t.Helper()
	needRoot(t)
	dir := testenv.TempDir(t)
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs -o size=`+size+`,mode=0700 clamgate-spool-test "$0" && echo ready && read x`, dir)
	stdin, err := cmd.StdinPipe()
	must(t, err)
	out, err := cmd.StdoutPipe()
	must(t, err)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	must(t, cmd.Start())
	t.Cleanup(func() { stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if l, _ := bufio.NewReader(out).ReadString('\n'); l != "ready\n" {
		t.Fatalf("mounting a private tmpfs: %q", l)
	}
	return fmt.Sprintf("/proc/%d/root%s", cmd.Process.Pid, dir)
}

// spoolAttackScript streams into every connection it opens: THREADS
// threads, each connecting again and again for SECS seconds, sends
// zINSTREAM and 64 KiB chunks without end until the gateway answers or
// closes. It prints the replies it got, counted.
const spoolAttackScript = `
import collections, json, socket, struct, sys, threading, time
path, threads, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
chunk = struct.pack(">I", 65536) + b"A" * 65536
replies, lock = collections.Counter(), threading.Lock()
end = time.time() + secs
def one():
    while time.time() < end:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(path)
            s.sendall(b"zINSTREAM\0")
            while time.time() < end:
                s.sendall(chunk)
            r = b"(still streaming)"
        except OSError as e:
            try:
                s.settimeout(2)
                r = s.recv(4096) or b"(closed)"
            except OSError:
                r = b"(" + type(e).__name__.encode() + b")"
        s.close()
        with lock:
            replies[r.decode("latin-1").rstrip("\0")] += 1
ts = [threading.Thread(target=one) for _ in range(threads)]
for t in ts: t.start()
for t in ts: t.join()
print(json.dumps(replies))
`

// spoolGateway serves policy "local" (anyone) and policy "mail" (root
// only) on two unix sockets, spooling into spool with serverTOML added.
func spoolGateway(t *testing.T, c *testenv.Clamd, spool, serverTOML string) (local, mail, metrics string) {
	t.Helper()
	dir := testenv.TempDir(t)
	local, mail, metrics = filepath.Join(dir, "local.sock"), filepath.Join(dir, "mail.sock"), testenv.FreePort(t)
	testenv.StartGateway(t, mustParse(t, fmt.Sprintf(`
[backend]
address = "unix:%s"
spool_dir = %q
stream_max_length = "100M"
[server]
read_timeout = "10s"
log_level = "info"
http = "tcp:%s"
%s
[[listener]]
address = "unix:%s"
policy = "local"
mode = "0666"
[[listener]]
address = "unix:%s"
policy = "mail"
mode = "0666"
[policy.local]
[policy.mail]
users = ["0"]
`, c.Socket, spool, metrics, serverTOML, local, mail)))
	return local, mail, "http://" + metrics
}

// victim scans, as the authorised client, a clean 1 MiB stream (spooled
// to disk) and EICAR in turn until stop closes, and reports each reply
// with its latency.
func victim(sock string, stop <-chan struct{}) (replies []string, latencies []time.Duration) {
	gw, _ := clamd.New("unix:"+sock, 20*time.Second)
	for i := 0; ; i++ {
		select {
		case <-stop:
			return replies, latencies
		default:
		}
		body := []byte(testenv.EICAR)
		if i%2 == 0 {
			body = bytes.Repeat([]byte(strconv.Itoa(i)+" clean\n"), 1<<20/8) // unique: clamd caches clean hashes
		}
		start := time.Now()
		r, err := gw.Instream(context.Background(), bytes.NewReader(body))
		if err != nil {
			r = "error: " + err.Error()
		}
		replies, latencies = append(replies, r), append(latencies, time.Since(start))
		time.Sleep(50 * time.Millisecond)
	}
}

// spoolAttack runs the attacker as an unprivileged uid for secs while the
// victim scans; it returns what each saw and the most the spool's file
// system held meanwhile.
func spoolAttack(t *testing.T, local, mail, spool string, secs int) (attacker map[string]int, replies []string, lat []time.Duration, peakFS int64) {
	t.Helper()
	py := needProgram(t, "python3", "/usr/bin/python3")
	cmd := exec.Command(py, "-c", spoolAttackScript, local, "100", strconv.Itoa(secs))
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 4311, Gid: 4311, Groups: []uint32{}}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	must(t, cmd.Start())
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(time.Second) // the attack first
		replies, lat = victim(mail, stop)
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for running := true; running; {
		select {
		case err := <-waited:
			must(t, err)
			running = false
		case <-tick.C:
			var st unix.Statfs_t
			if unix.Statfs(spool, &st) == nil {
				peakFS = max(peakFS, int64(st.Blocks-st.Bfree)*st.Bsize)
			}
		}
	}
	close(stop)
	<-done
	must(t, json.Unmarshal(out.Bytes(), &attacker))
	return attacker, replies, lat, peakFS
}

var eicarReply = "stream: " + testenv.EicarThreat + " FOUND"

// TestSpoolAttack: with the spool budget, a local user streaming into 100
// connections is told busy once it holds its share, the authorised client's
// verdicts keep arriving, and the spool never holds more than the budget.
func TestSpoolAttack(t *testing.T) {
	t.Parallel()
	c := testenv.StartClamd(t, testenv.ClamdOptions{StreamMaxLength: "100M"})
	spool := privateTmpfs(t, "64m")
	local, mail, metrics := spoolGateway(t, c, spool, "")
	attacker, replies, lat, peakFS := spoolAttack(t, local, mail, spool, 8)
	t.Logf("attacker's replies: %v", summary(attacker))
	t.Logf("victim: %d scans, latency max %v, median %v; spool file system peak %d bytes", len(replies), slices.Max(lat), median(lat), peakFS)
	busy := 0
	for r, n := range attacker {
		if strings.Contains(r, "gateway busy") && strings.Contains(r, "half of server.spool_budget") {
			busy += n
		}
		if strings.Contains(r, "/proc/") || strings.Contains(r, "clamgate-stream") {
			t.Errorf("the attacker saw an internal path: %q", r)
		}
	}
	if busy == 0 {
		t.Errorf("the attacker was never told busy: %v", attacker)
	}
	checkVictim(t, replies)
	budget, peak := int64(metricValue(t, metrics, "clamgate_spool_budget_bytes")), int64(metricValue(t, metrics, "clamgate_spool_peak_bytes"))
	t.Logf("spool budget %d bytes (half of the 64 MiB tmpfs), peak %d", budget, peak)
	if budget <= 0 || budget > 32<<20 || peak > budget || peakFS > budget {
		t.Errorf("budget %d, peak %d reserved, %d on the file system: the peak must stay under the budget", budget, peak, peakFS)
	}
}

// TestSpoolFull: without a budget that fits the file system (the attack
// as it was run on main), the attacker fills the spool; every other
// client's stream then fails closed, and its ERROR names no path and no
// errno.
func TestSpoolFull(t *testing.T) {
	t.Parallel()
	c := testenv.StartClamd(t, testenv.ClamdOptions{StreamMaxLength: "100M"})
	spool := privateTmpfs(t, "16m")
	local, mail, _ := spoolGateway(t, c, spool, `spool_budget = "1G"`)
	attacker, replies, _, peakFS := spoolAttack(t, local, mail, spool, 5)
	victims := map[string]int{}
	for _, r := range replies {
		victims[r]++
	}
	t.Logf("attacker's replies: %v; authorised client's: %v; spool file system peak %d bytes", summary(attacker), victims, peakFS)
	failed := 0
	for _, r := range append(slices.Collect(mapKeys(attacker)), replies...) {
		if strings.Contains(r, "/proc/") || strings.Contains(r, "clamgate-stream") || strings.Contains(r, "no space") {
			t.Errorf("a client saw an internal path or error: %q", r)
		}
		if r == "stream: the gateway could not store the stream. ERROR" {
			failed++
		}
		if strings.HasSuffix(r, "OK") && r != "stream: OK" {
			t.Errorf("unexpected reply %q", r)
		}
	}
	if failed == 0 {
		t.Errorf("no stream failed on the full spool: %v, %v", attacker, replies)
	}
	// The same through ICAP: the echo spool (no Allow: 204) fails closed
	// with a 500, no text.
	icapAddr := testenv.FreePort(t)
	testenv.StartGateway(t, mustParse(t, fmt.Sprintf(`
[backend]
address = "unix:%s"
spool_dir = %q
[server]
spool_budget = "1G"
[[listener]]
address = "tcp:%s"
protocol = "icap"
policy = "proxy"
[policy.proxy]
[icap]
spool_dir = %q
`, c.Socket, spool, icapAddr, spool)))
	filler, err := os.CreateTemp(spool, "filler")
	must(t, err)
	defer os.Remove(filler.Name())
	_, _ = io.Copy(filler, io.LimitReader(zeros{}, 64<<20)) // until ENOSPC
	got := icapRespmod(t, icapAddr, 2<<20)
	if !strings.HasPrefix(got, "ICAP/1.0 500 ") || strings.Contains(got, spool) || strings.Contains(got, "space") {
		t.Errorf("ICAP on a full spool: %q", got)
	}
}

// summary counts replies alike but for their numbers.
func summary(replies map[string]int) map[string]int {
	out := map[string]int{}
	for r, n := range replies {
		out[regexp.MustCompile(`\d+`).ReplaceAllString(r, "N")] += n
	}
	return out
}

func checkVictim(t *testing.T, replies []string) {
	t.Helper()
	if len(replies) < 4 {
		t.Fatalf("the authorised client got only %d verdicts: %q", len(replies), replies)
	}
	for i, r := range replies {
		want := "stream: OK"
		if i%2 == 1 {
			want = eicarReply
		}
		if r != want {
			t.Errorf("authorised client's scan %d: %q, want %q", i, r, want)
		}
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func mapKeys(m map[string]int) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// icapRespmod sends a RESPMOD of size bytes without Allow: 204, so that
// the body must be kept to be echoed, and returns the answer.
func icapRespmod(t *testing.T, addr string, size int) string {
	t.Helper()
	return icapRespmodAllow(t, addr, size, false)
}

func icapRespmodAllow(t *testing.T, addr string, size int, allow204 bool) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	must(t, err)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	hdr := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", size)
	allow := ""
	if allow204 {
		allow = "Allow: 204\r\n"
	}
	go func() {
		fmt.Fprintf(c, "RESPMOD icap://127.0.0.1/avscan ICAP/1.0\r\nHost: 127.0.0.1\r\n%sEncapsulated: res-hdr=0, res-body=%d\r\n\r\n%s", allow, len(hdr), hdr)
		for sent := 0; sent < size; sent += 64 << 10 {
			if _, err := fmt.Fprintf(c, "%x\r\n%s\r\n", 64<<10, bytes.Repeat([]byte("x"), 64<<10)); err != nil {
				return
			}
		}
		io.WriteString(c, "0\r\n\r\n")
	}()
	b, _ := io.ReadAll(bufio.NewReader(c))
	return string(b)
}

// TestSpoolShareFronts: a client holding its share of the spool gets each
// front's busy answer at once: clamd's busy ERROR, ICAP 503 (with and
// without Allow: 204, i.e. the dispatcher's spool and the echo spool), the
// milter's tempfail; once its stream ends, it scans again.
func TestSpoolShareFronts(t *testing.T) {
	t.Parallel()
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	dir := testenv.TempDir(t)
	sock, milterSock, icapAddr := filepath.Join(dir, "gw.sock"), filepath.Join(dir, "milter.sock"), testenv.FreePort(t)
	testenv.StartGateway(t, mustParse(t, fmt.Sprintf(`
[backend]
address = "unix:%s"
[server]
spool_budget = "2M"
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
`, c.Socket, sock, icapAddr, milterSock)))
	// 1 MiB of a stream that has not ended: the client's whole share
	// (half the budget).
	holder, err := net.Dial("unix", sock)
	must(t, err)
	defer holder.Close()
	head := instream("z", bytes.Repeat([]byte("h"), 1024<<10))
	_, err = holder.Write(head[:len(head)-4])
	must(t, err)
	time.Sleep(300 * time.Millisecond) // read and spooled
	if got := string(exchange(t, "unix", sock, step{Data: instream("z", []byte(testenv.EICAR))})); !strings.HasPrefix(got, "stream: gateway busy: ") ||
		!strings.Contains(got, "half of server.spool_budget") || !strings.HasSuffix(got, " ERROR\x00") {
		t.Errorf("clamd protocol: %q, want the busy ERROR", got)
	}
	for _, allow204 := range []bool{true, false} {
		if got := icapRespmodAllow(t, icapAddr, 300<<10, allow204); !strings.HasPrefix(got, "ICAP/1.0 503 ") {
			t.Errorf("ICAP (Allow: 204 %v): %q, want 503", allow204, firstLine(got))
		}
	}
	if act := milterSized(t, milterSock, 300<<10); act.Type != gomilter.ActionTempFail && act.SMTPCode/100 != 4 {
		t.Errorf("milter: %+v, want a temporary failure", act)
	}
	_, err = holder.Write([]byte{0, 0, 0, 0})
	must(t, err)
	if got, _ := io.ReadAll(holder); string(got) != "stream: OK\x00" {
		t.Errorf("the holder's own stream: %q", got)
	}
	if got := string(exchange(t, "unix", sock, step{Data: instream("z", []byte(testenv.EICAR))})); got != eicarReply+"\x00" {
		t.Errorf("after the holder's stream ended: %q", got)
	}
}

// milterSized sends one message of size body bytes as an MTA and
// returns the filter's decision.
func milterSized(t *testing.T, sock string, size int) *gomilter.Action {
	t.Helper()
	s, err := gomilter.NewClient("unix", sock, gomilter.WithReadTimeout(time.Minute)).Session(gomilter.NewMacroBag())
	must(t, err)
	defer s.Close()
	var chunks [][]byte
	for sent := 0; sent < size; sent += 60000 {
		chunks = append(chunks, bytes.Repeat([]byte("m"), 60000))
	}
	steps := milterEvents(s, chunks...)
	for _, step := range steps {
		if act, err := step(); err != nil || act.StopProcessing() {
			must(t, err)
			return act
		}
	}
	_, act, err := s.End()
	must(t, err)
	return act
}

// TestMilterSpoolGivenBack: whatever ends a milter message, its bytes go
// back to the spool budget: one aborted by the MTA past its first 64 KiB
// (in a spool file by then), one whose connection closes mid-body, one
// over max_object, a body packet before negotiation, and a scanned one.
// A leak would leave the milter busy for good once the budget filled.
func TestMilterSpoolGivenBack(t *testing.T) {
	t.Parallel()
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	dir := testenv.TempDir(t)
	milterSock, httpAddr := filepath.Join(dir, "milter.sock"), testenv.FreePort(t)
	testenv.StartGateway(t, mustParse(t, fmt.Sprintf(`
[backend]
address = "unix:%s"
[server]
http = "tcp:%s"
spool_budget = "4M"
[[listener]]
address = "unix:%s"
protocol = "milter"
policy = "p"
mode = "0666"
[policy.p]
max_object = "1M"
`, c.Socket, httpAddr, milterSock)))
	base := "http://" + httpAddr
	chunk := bytes.Repeat([]byte("m"), 60000)
	session := func() *gomilter.ClientSession {
		s, err := gomilter.NewClient("unix", milterSock, gomilter.WithReadTimeout(time.Minute)).Session(gomilter.NewMacroBag())
		must(t, err)
		return s
	}
	upTo := func(s *gomilter.ClientSession, chunks int) {
		for _, step := range milterEvents(s, slices.Repeat([][]byte{chunk}, chunks)...) {
			if act, err := step(); err != nil || act.Type != gomilter.ActionContinue {
				t.Fatalf("before the end of the message: %v %v", act, err)
			}
		}
	}
	aborted := session()
	upTo(aborted, 4)
	waitSeries(t, base, "clamgate_spool_bytes", float64(4*len(chunk)+len("\r\n"))) // held while the message is open
	must(t, aborted.Abort(nil))
	waitSeries(t, base, "clamgate_spool_bytes", 0)
	// The next message on the same connection.
	for _, step := range []func() (*gomilter.Action, error){
		func() (*gomilter.Action, error) { return aborted.Mail("<a@example.org>", "") },
		func() (*gomilter.Action, error) { return aborted.Rcpt("<b@example.net>", "") },
		aborted.DataStart, aborted.HeaderEnd,
		func() (*gomilter.Action, error) { return aborted.BodyChunk(chunk) },
	} {
		if act, err := step(); err != nil || act.Type != gomilter.ActionContinue {
			t.Fatalf("the message after the aborted one: %v %v", act, err)
		}
	}
	_, act, err := aborted.End()
	if err != nil || act.Type != gomilter.ActionAccept {
		t.Fatalf("the message after the aborted one: %+v %v", act, err)
	}
	aborted.Close()

	closed := session()
	upTo(closed, 3)
	closed.Close()
	waitSeries(t, base, "clamgate_spool_bytes", 0)

	if act := milterSized(t, milterSock, 2<<20); act.Type == gomilter.ActionAccept {
		t.Errorf("over max_object: %+v, want it refused", act)
	}
	waitSeries(t, base, "clamgate_spool_bytes", 0)

	early, err := net.Dial("unix", milterSock)
	must(t, err)
	body := append(binary.BigEndian.AppendUint32(nil, 1001), 'B')
	_, err = early.Write(append(body, bytes.Repeat([]byte("x"), 1000)...))
	must(t, err)
	io.Copy(io.Discard, early) // the guard or the library closes it
	early.Close()

	if act := milterSized(t, milterSock, 300<<10); act.Type != gomilter.ActionAccept {
		t.Errorf("a clean 300 KiB message: %+v, want accepted", act)
	}
	waitSeries(t, base, "clamgate_spool_bytes", 0)
	if peak := metricValue(t, base, "clamgate_spool_peak_bytes"); peak < 300<<10 {
		t.Errorf("spool peak %v: the messages never reached the spool", peak)
	}
}
