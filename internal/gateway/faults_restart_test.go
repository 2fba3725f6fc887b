package gateway_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/testenv"
)

// activated runs clamgate processes the way systemd runs clamgate.service
// behind clamgate.socket: the listening socket is bound once, here, and
// every process started gets it as fd 3 (LISTEN_FDS, LISTEN_PID), so
// that connections wait in its backlog while no gateway is running.
// systemd-socket-activate cannot stand in: it binds, then replaces itself
// with the program, so the socket dies with the first gateway.
type activated struct {
	t    *testing.T
	bin  string
	conf string
	sock *os.File
	log  *os.File // every process's output, in turn
}

func (a *activated) start() *exec.Cmd {
	a.t.Helper()
	cmd := exec.Command("sh", "-c", `export LISTEN_PID=$$ LISTEN_FDS=1; exec "$0" serve --config "$1"`, a.bin, a.conf)
	cmd.ExtraFiles = []*os.File{a.sock}
	cmd.Stdout, cmd.Stderr = a.log, a.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	must(a.t, cmd.Start())
	a.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// TestFaultGatewayRestart: the gateway behind a socket systemd holds.
// A restart under load (SIGTERM, then a new process once the old one has
// exited, as systemctl restart does) refuses no connection and fails no
// scan: the scan in flight finishes on the old process, the connections
// made meanwhile wait in the socket's backlog for the new one. A SIGKILL
// under load fails the scans in flight (an error or a reset, never OK)
// and nothing else; the figure printed is the time from the kill to the
// first verdict of the next process, started at once as Restart= does
// (RestartSec=100ms by default, not counted).
//
// With a managed clamd, each process starts its own engine: jobs wait for
// it (the dispatcher is held until it answers) instead of failing.
func TestFaultGatewayRestart(t *testing.T) {
	bin := buildClamgate(t, testenv.TempDir(t))
	t.Run("external clamd", func(t *testing.T) {
		c := testenv.StartClamd(t, testenv.ClamdOptions{})
		restartUnderLoad(t, bin, fmt.Sprintf("[backend]\naddress = \"unix:%s\"\n", c.Socket), 2*time.Second)
	})
	t.Run("managed clamd", func(t *testing.T) {
		needRoot(t)
		dir := testenv.TempDir(t)
		db := filepath.Join(dir, "db")
		testenv.WriteTestDB(t, db)
		// Its own clamd loads the database again: more than 2 s on a busy
		// machine, even for the test database.
		restartUnderLoad(t, bin, fmt.Sprintf("[engine]\nclamd = \"/usr/sbin/clamd\"\nstate_dir = \"%s/state\"\ndatabase = %q\nmax_threads = 4\n", dir, db), 15*time.Second)
	})
}

func restartUnderLoad(t *testing.T, bin, backendTOML string, backWithin time.Duration) {
	dir := testenv.TempDir(t)
	var ln *net.UnixListener
	var err error
	a := &activated{t: t, bin: bin, conf: filepath.Join(dir, "clamgate.toml")}
	sock := filepath.Join(dir, "gw.sock")
	a.log, err = os.Create(filepath.Join(dir, "gateway.log"))
	must(t, err)
	defer a.log.Close()
	must(t, os.WriteFile(a.conf, []byte(fmt.Sprintf(`%s
[server]
shutdown_grace = "20s"
[[listener]]
address = "unix:%s"
policy = "p"
mode = "0666"
[policy.p]
`, backendTOML, sock)), 0o644))
	ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	must(t, err)
	defer ln.Close()
	a.sock, err = ln.File()
	must(t, err)
	defer a.sock.Close()

	first := a.start()
	gw, err := clamd.New("unix:"+sock, time.Minute)
	must(t, err)
	l := newFaultLoad(gw, 4)
	time.Sleep(time.Second)

	// A scan in flight across the restart: half its stream before the
	// SIGTERM, the rest after.
	slow, err := net.Dial("unix", sock)
	must(t, err)
	defer slow.Close()
	_, err = slow.Write(append([]byte("zINSTREAM\x00"), chunk([]byte(testenv.EICAR[:30]))...))
	must(t, err)
	time.Sleep(300 * time.Millisecond) // accepted, reading
	term := time.Now()
	must(t, first.Process.Signal(syscall.SIGTERM))
	time.Sleep(300 * time.Millisecond)
	_, err = slow.Write(append(chunk([]byte(testenv.EICAR[30:])), 0, 0, 0, 0))
	must(t, err)
	var inFlight bytes.Buffer
	_ = slow.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, _ = inFlight.ReadFrom(slow)
	_ = first.Wait()
	restarted := time.Now()
	second := a.start()
	time.Sleep(1500 * time.Millisecond)

	killed := time.Now()
	must(t, second.Process.Kill())
	_ = second.Wait()
	a.start() // Restart=: at once
	time.Sleep(1500 * time.Millisecond)
	all := l.stop()

	if got := inFlight.String(); got != "stream: "+testenv.EicarThreat+" FOUND\x00" {
		t.Errorf("the scan in flight across the restart: %q", got)
	}
	good, failed := neverWrong(t, all)
	var refused, failedRestart, failedKill, failedOther int
	for _, s := range all {
		if s.good() {
			continue
		}
		switch {
		case s.err != nil && (strings.Contains(s.err.Error(), "refused") || strings.Contains(s.err.Error(), "no such file")):
			refused++
		case s.start.Before(killed) && s.end.After(killed):
			failedKill++ // in flight at the kill: allowed, never OK
		case s.end.After(term) && s.start.Before(restarted.Add(time.Second)):
			failedRestart++
			t.Logf("failed across the restart: started %v after the SIGTERM, ended %v after: %q %v",
				s.start.Sub(term).Round(time.Millisecond), s.end.Sub(term).Round(time.Millisecond), s.reply, s.err)
		default:
			failedOther++
		}
	}
	if refused+failedRestart+failedOther > 0 {
		t.Errorf("%d refused connections, %d scans failed across the restart, %d elsewhere; want none", refused, failedRestart, failedOther)
	}
	back := firstGoodAfter(all, killed)
	if back < 0 || back > backWithin {
		t.Errorf("first verdict %v after the SIGKILL; want the next process serving within %v", back, backWithin)
	}
	if t.Failed() {
		out, _ := os.ReadFile(a.log.Name())
		t.Logf("gateway output:\n%s", out)
	}
	t.Logf("4 clients through a socket held across processes: %d requests, %d good, %d failed closed (in flight at the SIGKILL when the test passes), %d refused; restart: SIGTERM to exit %v (the scan in flight finished: %q), no scan failed; SIGKILL to the next process's first verdict %v",
		len(all), good, failed, refused, restarted.Sub(term).Round(time.Millisecond), strings.TrimRight(inFlight.String(), "\x00"), back.Round(time.Millisecond))
}
