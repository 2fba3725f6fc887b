package milter_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"clamgate/internal/testenv"
)

// postfix is a private postfix instance: its own configuration, queue and
// mailboxes under a temporary directory, SMTP on loopback ports.
type postfix struct {
	dir     string
	confDir string
	mailDir string // maildir every accepted message is delivered to
	log     *bytes.Buffer
}

// startPostfix runs postfix in the foreground with one SMTP listener per
// entry of milters (listener address -> milter socket path), each sending
// its mail through that milter with milter_default_action = tempfail.
func startPostfix(t *testing.T, milters map[string]string) *postfix {
	t.Helper()
	bin, err := exec.LookPath("postfix")
	if err != nil {
		t.Fatal("postfix is not installed: run scripts/install-deps.sh --test")
	}
	dir := testenv.TempDir(t)
	p := &postfix{dir: dir, confDir: filepath.Join(dir, "etc"), mailDir: filepath.Join(dir, "mail"), log: &bytes.Buffer{}}
	for _, d := range []string{p.confDir, p.mailDir, filepath.Join(dir, "spool"), filepath.Join(dir, "data")} {
		must(t, os.MkdirAll(d, 0o755))
	}
	// Virtual delivery writes as nobody, which owns the mailboxes; the
	// daemons keep their state as postfix. postfix check makes the rest.
	must(t, os.Chown(p.mailDir, 65534, 65534))
	if u, err := user.Lookup("postfix"); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		must(t, os.Chown(filepath.Join(dir, "data"), uid, gid))
	}
	must(t, os.WriteFile(filepath.Join(p.confDir, "main.cf"), []byte(p.mainCF()), 0o644))
	must(t, os.WriteFile(filepath.Join(p.confDir, "master.cf"), []byte(masterCF(milters)), 0o644))

	if out, err := exec.Command(bin, "-c", p.confDir, "check").CombinedOutput(); err != nil {
		t.Fatalf("postfix check: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-c", p.confDir, "start-fg")
	cmd.Stdout, cmd.Stderr = p.log, p.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	must(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = exec.Command(bin, "-c", p.confDir, "stop").Run()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("postfix log:\n%s", p.log)
		}
	})
	for addr := range milters {
		waitSMTP(t, addr, done)
	}
	return p
}

func (p *postfix) mainCF() string {
	return strings.Join([]string{
		"compatibility_level = 3.6",
		"queue_directory = " + filepath.Join(p.dir, "spool"),
		"data_directory = " + filepath.Join(p.dir, "data"),
		"meta_directory = /etc/postfix",
		"mail_owner = postfix",
		"setgid_group = postdrop",
		"myhostname = mx.clamgate.test",
		"mydestination =",
		"inet_interfaces = 127.0.0.1",
		"inet_protocols = ipv4",
		"mynetworks = 127.0.0.0/8",
		"smtpd_relay_restrictions = permit_mynetworks, reject",
		"alias_maps =",
		"alias_database =",
		"biff = no",
		"maillog_file = /dev/stdout",
		"milter_default_action = tempfail",
		"milter_protocol = 6",
		"virtual_mailbox_domains = example.net",
		"virtual_mailbox_base = " + p.mailDir,
		"virtual_mailbox_maps = static:box/",
		"virtual_uid_maps = static:65534",
		"virtual_gid_maps = static:65534",
		"",
	}, "\n")
}

// masterCF lists only the services a delivery to a local maildir needs,
// unchrooted (the milter sockets are outside any chroot).
func masterCF(milters map[string]string) string {
	var b strings.Builder
	for addr, sock := range milters {
		fmt.Fprintf(&b, "%s inet n - n - - smtpd -o smtpd_milters=unix:%s\n", addr, sock)
	}
	b.WriteString(`pickup    unix n - n 60 1 pickup
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
showq     unix n - n - - showq
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
virtual   unix - n n - - virtual
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
`)
	return b.String()
}

func waitSMTP(t *testing.T, addr string, exited <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("postfix exited before listening on %s", addr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfix not listening on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// swaks sends one message and returns its transcript; the exit status is
// not checked, since a refused message is what some tests expect.
func swaks(t *testing.T, addr, subject string, extra ...string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	args := append([]string{"--server", host, "--port", port, "--from", "sender@clamgate.test",
		"--to", "user@example.net", "--header", "Subject: " + subject, "--timeout", "30"}, extra...)
	out, _ := exec.Command("swaks", args...).CombinedOutput()
	return string(out)
}

// delivered waits for a delivered message whose text contains marker.
func (p *postfix) delivered(t *testing.T, marker string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		files, _ := filepath.Glob(filepath.Join(p.mailDir, "box", "new", "*"))
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil && bytes.Contains(b, []byte(marker)) {
				return string(b)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no delivered message contains %q", marker)
	return ""
}

// held lists the queue IDs in postfix's hold queue.
func (p *postfix) held(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("postqueue", "-c", p.confDir, "-j").Output()
	if err != nil {
		t.Fatalf("postqueue -j: %v", err)
	}
	var ids []string
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		var m struct {
			Queue string `json:"queue_name"`
			ID    string `json:"queue_id"`
		}
		if len(line) > 0 && json.Unmarshal(line, &m) == nil && m.Queue == "hold" {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestPostfix sends mail with swaks through a real postfix whose
// smtpd_milters is the gateway: clean mail is delivered, EICAR is
// rejected with the configured text or held, and with clamd gone the
// SMTP client is told to try again later.
func TestPostfix(t *testing.T) {
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	rejecting := startMilter(t, "unix:"+clamd.Socket, "add_header = true\nreject_message = \"Virus %v found, 100% sure\"")
	holding := startMilter(t, "unix:"+clamd.Socket, `on_infected = "quarantine"`)
	rejectAddr, holdAddr := testenv.FreePort(t), testenv.FreePort(t)
	pf := startPostfix(t, map[string]string{rejectAddr: rejecting, holdAddr: holding})
	eicar := filepath.Join(testenv.TempDir(t), "eicar.com")
	must(t, os.WriteFile(eicar, []byte(testenv.EICAR), 0o644))

	t.Run("clean is delivered", func(t *testing.T) {
		out := swaks(t, rejectAddr, "clean-1", "--body", "hello, nothing to see")
		if !strings.Contains(out, "<-  250 2.0.0 Ok: queued") {
			t.Fatalf("clean mail not queued:\n%s", out)
		}
		msg := pf.delivered(t, "Subject: clean-1")
		for _, h := range []string{"X-Virus-Scanned: clamgate at ", "X-Virus-Status: Clean"} {
			if !strings.Contains(msg, h) {
				t.Errorf("delivered message lacks %q:\n%s", h, msg)
			}
		}
	})
	t.Run("EICAR is rejected", func(t *testing.T) {
		out := swaks(t, rejectAddr, "eicar-1", "--body", "see attachment", "--attach", "@"+eicar)
		want := "<** 550 5.7.1 Virus " + testenv.EicarThreat + " found, 100% sure"
		if !strings.Contains(out, want) {
			t.Fatalf("want %q in:\n%s", want, out)
		}
	})
	t.Run("EICAR is held", func(t *testing.T) {
		before := len(pf.held(t))
		out := swaks(t, holdAddr, "eicar-2", "--body", "see attachment", "--attach", "@"+eicar)
		if !strings.Contains(out, "<-  250 2.0.0 Ok: queued") {
			t.Fatalf("quarantined mail not accepted:\n%s", out)
		}
		if held := pf.held(t); len(held) != before+1 {
			t.Fatalf("hold queue has %v, want one more message than %d", held, before)
		}
		out = swaks(t, holdAddr, "clean-2", "--body", "fine")
		if !strings.Contains(out, "<-  250 2.0.0 Ok: queued") {
			t.Fatalf("clean mail not queued:\n%s", out)
		}
		pf.delivered(t, "Subject: clean-2")
	})
	t.Run("clamd down is a temporary failure", func(t *testing.T) {
		clamd.Kill()
		out := swaks(t, rejectAddr, "clean-3", "--body", "hello again")
		if !strings.Contains(out, "<** 451 4.7.1 Message could not be scanned for viruses, try again later") {
			t.Fatalf("want a 451 from postfix:\n%s", out)
		}
	})
}
