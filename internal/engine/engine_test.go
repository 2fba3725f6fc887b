package engine

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/config"
)

const eicar = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// TestManagedClamd runs the real clamd under the engine with the built-in
// test database, and checks it is restarted after a crash.
func TestManagedClamd(t *testing.T) {
	dir, err := os.MkdirTemp("", "cge")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	e := New(config.Engine{Clamd: "/usr/sbin/clamd", StateDir: dir, Database: TestDatabase, MaxThreads: 2,
		StreamMaxLength: 1 << 20, User: rootTestUser()}, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	if err := e.Prepare(); err != nil {
		t.Fatal(err)
	}
	conf, _ := os.ReadFile(e.confPath())
	for _, want := range []string{"LocalSocket " + e.Socket(), "StreamMaxLength 1048576", "MaxThreads 2", "Foreground yes", "AlertExceedsMax yes"} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("clamd.conf lacks %q:\n%s", want, conf)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() { cancel(); <-done }()

	client := &clamd.Client{Network: "unix", Address: e.Socket(), Timeout: 10 * time.Second}
	scan := func() string {
		t.Helper()
		wait, stop := context.WithTimeout(ctx, 60*time.Second)
		defer stop()
		if err := e.WaitReady(wait); err != nil {
			t.Fatalf("managed clamd not ready: %v", err)
		}
		reply, err := client.Instream(ctx, strings.NewReader(eicar))
		if err != nil {
			t.Fatal(err)
		}
		return reply
	}
	if got := scan(); got != "stream: Eicar-Test-Signature.UNOFFICIAL FOUND" {
		t.Fatalf("EICAR through the built-in database: %q", got)
	}
	clam, err := os.Open("/usr/share/clamav-testfiles/clam.exe")
	if err != nil {
		t.Fatalf("clamav-testfiles: %v", err)
	}
	defer clam.Close()
	if got, err := client.Fildes(ctx, clam); err != nil || !strings.HasSuffix(got, ": ClamAV-Test-File.UNOFFICIAL FOUND") {
		t.Fatalf("clam.exe through the built-in database: %q %v", got, err)
	}

	pid := readPID(t, dir)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for readPIDOr0(dir) == pid || readPIDOr0(dir) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("clamd was not restarted")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := scan(); !strings.HasSuffix(got, "FOUND") {
		t.Fatalf("after restart: %q", got)
	}
}

func readPID(t *testing.T, dir string) int {
	for i := 0; i < 100; i++ {
		if pid := readPIDOr0(dir); pid > 0 {
			return pid
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no clamd.pid")
	return 0
}

func readPIDOr0(dir string) int {
	b, err := os.ReadFile(dir + "/run/clamd.pid")
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}
