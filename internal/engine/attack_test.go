package engine

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"clamgate/internal/config"
)

// asEngineUser runs a shell command as the engine's test user, with no
// supplementary groups and no capabilities: the attacker of issue 23.
func asEngineUser(t *testing.T, script string) (string, error) {
	t.Helper()
	out, err := asEngineUserCmd(t, script).CombinedOutput()
	return string(out), err
}

func asEngineUserCmd(t *testing.T, script string) *exec.Cmd {
	t.Helper()
	u, err := user.Lookup(testUser)
	if err != nil {
		t.Fatal(err)
	}
	return exec.Command("setpriv", "--reuid="+u.Uid, "--regid="+u.Gid, "--clear-groups",
		"--inh-caps=-all", "sh", "-c", script)
}

// TestStateDirLinksNotFollowed is the clamav -> root attack: a process of
// the engine's uid (freshclam, a host clamd) plants links in a state
// directory an earlier run left to that uid, pointing at a root 0600 file
// and a root 0700 directory; the next start, as root, must neither chown
// nor overwrite them, and takes the state directory back.
func TestStateDirLinksNotFollowed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the attack is on clamgate running as root")
	}
	dir := shortTempDir(t)
	vault := filepath.Join(dir, "vault") // stands for /etc: root's, 0700
	must(t, os.Mkdir(vault, 0o700))
	secret := filepath.Join(vault, "secret")
	must(t, os.WriteFile(secret, []byte("root only\n"), 0o600))
	victimDir := filepath.Join(vault, "private")
	must(t, os.Mkdir(victimDir, 0o700))
	victims := []string{secret, victimDir, vault}
	before := statAll(t, victims)

	state := filepath.Join(dir, "state")
	cfg := config.Engine{Clamd: "/usr/sbin/clamd", StateDir: state, Database: TestDatabase, MaxThreads: 2,
		StreamMaxLength: 1 << 20, User: testUser, Reload: "frugal"}
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	must(t, New(cfg, log).Prepare())

	// An earlier version (or an earlier run) left the state directory to
	// the engine's user: give it back to that user, then plant.
	u, _ := user.Lookup(testUser)
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	must(t, os.Chown(state, uid, gid))
	plant := fmt.Sprintf(`cd %[1]s && for n in clamd.conf clamd.log clamd.pid .clamd.conf.new; do rm -rf $n; ln -s %[2]s $n; done
for n in tmp testdb bin run log; do rm -rf $n; ln -s %[3]s $n; done
for n in run log tmp; do :; done`, state, secret, victimDir)
	if out, err := asEngineUser(t, plant); err != nil {
		t.Fatalf("planting as %s: %v\n%s", testUser, err, out)
	}
	// And inside the directories it keeps owning in the new layout.
	err := New(cfg, log).Prepare()
	t.Logf("second start: %v", err)
	if out, err := asEngineUser(t, fmt.Sprintf(`cd %[1]s && for d in run log tmp; do ln -sf %[2]s $d/clamd.pid; ln -sf %[2]s $d/clamd.log; done`, state, secret)); err != nil {
		t.Logf("planting in the engine's own directories: %v %s", err, out)
	}
	err = New(cfg, log).Prepare()
	t.Logf("third start: %v", err)

	after := statAll(t, victims)
	for i, p := range victims {
		if before[i] != after[i] {
			t.Errorf("%s changed by a start as root: %s -> %s", p, before[i], after[i])
		}
	}
	if b, _ := os.ReadFile(secret); string(b) != "root only\n" {
		t.Errorf("%s overwritten: %q", secret, b)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(state, &st); err != nil || st.Uid != 0 {
		t.Errorf("the state directory is not root's after the start: uid %d %v", st.Uid, err)
	}
	if out, err := asEngineUser(t, "ls "+vault); err == nil {
		t.Errorf("the engine's user can list the vault: %s", out)
	}
}

func statAll(t *testing.T, paths []string) []string {
	t.Helper()
	var out []string
	for _, p := range paths {
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("uid=%d gid=%d mode=%o size=%d", st.Uid, st.Gid, st.Mode&0o7777, st.Size))
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestClamdMemoryPrivate: another process of the engine's uid cannot read
// the running clamd's memory or environment (/proc/<clamd>/mem, environ),
// and the environment holds nothing of the gateway's.
func TestClamdMemoryPrivate(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the engine's own uid exists only when clamgate runs as root")
	}
	const marker = "CLAMGATE_TEST_GATEWAY_SECRET"
	t.Setenv(marker, "gateway-only-value")
	s := startSandboxed(t)
	pid := s.e.PID()
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	must(t, err)
	start, _, _ := strings.Cut(strings.Fields(string(maps))[0], "-")
	addr, err := strconv.ParseUint(start, 16, 64)
	must(t, err)
	mem, err := asEngineUser(t, fmt.Sprintf("dd if=/proc/%d/mem of=/dev/null bs=64 count=1 skip=%d iflag=skip_bytes status=none", pid, addr))
	t.Logf("another process of the engine's uid reads /proc/%d/mem at %#x: %v %q", pid, addr, err, mem)
	if err == nil {
		t.Errorf("clamd's memory is readable by another process of its uid: %q", mem)
	}
	env, err := asEngineUser(t, fmt.Sprintf("cat /proc/%d/environ", pid))
	t.Logf("another process of the engine's uid reads /proc/%d/environ: %v %.80q", pid, err, env)
	if err == nil {
		t.Errorf("clamd's environment is readable by another process of its uid (%d bytes)", len(env))
	}
	own, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	must(t, err)
	if bytes.Contains(own, []byte(marker)) || len(bytes.Split(own, []byte{0})) > 3 {
		t.Errorf("clamd's environment is not minimal: %.200q", own)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if got, err := s.client.Instream(ctx, strings.NewReader(eicar)); err != nil || !strings.HasSuffix(got, "FOUND") {
		t.Errorf("the non-dumpable clamd does not scan: %q %v", got, err)
	}
}
