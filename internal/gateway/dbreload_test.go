package gateway

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"clamgate/internal/clamd"
	"clamgate/internal/engine"
)

// TestReloadModes: explicit modes are the configuration's; auto for an
// external clamd holds requests, since its setting is unknown.
func TestReloadModes(t *testing.T) {
	for mode, want := range map[string]engine.ReloadMode{
		"frugal":     {Frugal: true, Basis: "config"},
		"concurrent": {Frugal: false, Basis: "config"},
		"auto":       {Frugal: true, Basis: "external"},
	} {
		got := (&dbReload{mode: mode}).current()
		if got.Frugal != want.Frugal || got.Basis != want.Basis {
			t.Errorf("%s: %+v", mode, got)
		}
	}
}

// TestReloadReachesEveryBackend: a reload sends RELOAD to every backend
// it was handed (primaries and fallback load the same database); in
// frugal mode it holds the dispatcher until each answers PING again, in
// concurrent mode it never holds. The backends are stand-ins that log
// what they receive; real clamd reloads are in TestReloadOnUpdate and
// TestManagedAutoReload.
func TestReloadReachesEveryBackend(t *testing.T) {
	for _, mode := range []string{"frugal", "concurrent"} {
		t.Run(mode, func(t *testing.T) {
			jobs := &heldLog{}
			a, b := startReloadee(t, jobs), startReloadee(t, jobs)
			r := &dbReload{jobs: jobs, backends: []*clamd.Client{a.client(), b.client()}, mode: mode,
				log: slog.New(slog.DiscardHandler)}
			res, err := r.reload(context.Background())
			if err != nil || res.restarted || res.mode.Frugal != (mode == "frugal") {
				t.Fatalf("reload: %+v %v", res, err)
			}
			want := "hold RELOAD PING RELOAD PING release"
			if mode == "concurrent" {
				want = "RELOAD RELOAD"
			}
			if got := jobs.String(); got != want {
				t.Fatalf("events %q, want %q", got, want)
			}
		})
	}
}

// heldLog is the dispatcher as a reload sees it, recording holds and
// releases among the commands the backends receive.
type heldLog struct {
	mu     sync.Mutex
	events []string
}

func (h *heldLog) add(e string) {
	h.mu.Lock()
	h.events = append(h.events, e)
	h.mu.Unlock()
}

func (h *heldLog) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.events, " ")
}

func (h *heldLog) Hold() func() {
	h.add("hold")
	return func() { h.add("release") }
}

func (h *heldLog) WaitIdle(context.Context) error { return nil }

// reloadee answers RELOAD and PING as clamd does, recording each command.
type reloadee struct{ sock string }

func startReloadee(t *testing.T, log *heldLog) *reloadee {
	dir, err := os.MkdirTemp("", "cg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	r := &reloadee{sock: filepath.Join(dir, "clamd.sock")}
	ln, err := net.Listen("unix", r.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			cmd, _ := bufio.NewReader(c).ReadString(0)
			cmd = strings.TrimSuffix(strings.TrimPrefix(cmd, "z"), "\x00")
			log.add(cmd)
			reply := map[string]string{"RELOAD": "RELOADING", "PING": "PONG"}[cmd]
			_, _ = c.Write([]byte(reply + "\x00"))
			c.Close()
		}
	}()
	return r
}

func (r *reloadee) client() *clamd.Client {
	return &clamd.Client{Network: "unix", Address: r.sock, Timeout: 5 * time.Second}
}
