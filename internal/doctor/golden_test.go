package doctor_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"clamgate/internal/config"
	"clamgate/internal/doctor"
	"clamgate/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// fakeProc describes one process of the fake host.
type fakeProc struct {
	pid                  int
	comm, status, cgroup string
	netns                string
	sockets              []string // socket inodes held open
	tcp, dev             string   // its own net/ (other namespace)
}

const hostNS = "net:[4026531840]"

func status(uid, gid, groups, capEff, capBnd string, nnp, seccomp, rssKB int) string {
	return fmt.Sprintf("Name:\tx\nUid:\t%[1]s\t%[1]s\t%[1]s\t%[1]s\nGid:\t%[2]s\t%[2]s\t%[2]s\t%[2]s\nGroups:\t%[3]s\nVmRSS:\t%[8]d kB\n"+
		"CapInh:\t0000000000000000\nCapEff:\t%[4]s\nCapBnd:\t%[5]s\nNoNewPrivs:\t%[6]d\nSeccomp:\t%[7]d\n",
		uid, gid, groups, capEff, capBnd, nnp, seccomp, rssKB)
}

const tcpHeader = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

func tcpLine(addr string, inode int) string {
	return fmt.Sprintf("   0: %s 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 %d 1 0000000000000000 100 0 0 10 0\n", addr, inode)
}

const devHeader = "Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n"

// fakeHost writes a /proc, a /sys and a host tree: the host's old
// clamd@amavisd (root, on 0.0.0.0:3310), the container's clamd (uid 100,
// hardened, capped at 3 GiB), the gateway, and an amavisd that dropped its
// groups; units with the Wants= trap half fixed; a database 30 h old.
func fakeHost(t *testing.T) (procDir, sysDir, root string) {
	base := testenv.TempDir(t)
	procDir, sysDir, root = filepath.Join(base, "proc"), filepath.Join(base, "sys"), filepath.Join(base, "root")
	full := "000001ffffffffff"
	procs := []fakeProc{
		{pid: 100, comm: "clamgate", netns: hostNS, sockets: []string{"1002", "1003"},
			status: status("998", "998", "998", "0000000000000000", "0000000000000000", 1, 2, 30000), cgroup: "0::/system.slice/clamgate.service\n"},
		{pid: 200, comm: "clamd", netns: hostNS, sockets: []string{"1001"},
			status: status("0", "0", "", full, full, 0, 0, 1331200), cgroup: "0::/system.slice/system-clamd.slice/clamd@amavisd.service\n"},
		{pid: 300, comm: "clamd", netns: "net:[4026532999]", sockets: []string{"2001"},
			status: status("100", "101", "101", "0000000000000000", "00000000000000cb", 1, 2, 984064), cgroup: "0::/machine.slice/libpod-abc.scope/container\n",
			tcp: tcpHeader + tcpLine("00000000:0CEE", 2001), dev: devHeader + "    lo: 0 0\n"},
		{pid: 400, comm: "amavisd (master", netns: hostNS,
			status: status("110", "115", "115", "0000000000000000", full, 0, 0, 150000), cgroup: "0::/system.slice/amavis.service\n"},
	}
	for _, p := range procs {
		dir := filepath.Join(procDir, fmt.Sprint(p.pid))
		writeFile(t, dir, "comm", p.comm+"\n")
		writeFile(t, dir, "status", p.status)
		writeFile(t, dir, "cgroup", p.cgroup)
		writeFile(t, dir, "cmdline", p.comm+"\x00")
		symlink(t, dir, "ns/net", p.netns)
		for i, ino := range p.sockets {
			symlink(t, dir, fmt.Sprintf("fd/%d", i+3), "socket:["+ino+"]")
		}
		if p.tcp != "" {
			writeFile(t, dir, "net/tcp", p.tcp)
			writeFile(t, dir, "net/dev", p.dev)
		}
	}
	symlink(t, procDir, "1/ns/net", hostNS)
	writeFile(t, procDir, "self/status", status("0", "0", "", full, full, 0, 0, 1000))
	writeFile(t, procDir, "sys/kernel/cap_last_cap", "40\n")
	writeFile(t, procDir, "net/tcp", tcpHeader+tcpLine("00000000:0CEE", 1001)+tcpLine("0100007F:0540", 1002)+tcpLine("0100007F:1F90", 1099))
	writeFile(t, procDir, "net/tcp6", tcpHeader)
	writeFile(t, procDir, "net/unix", "Num       RefCount Protocol Flags    Type St Inode Path\n"+
		"0000000000000000: 00000002 00000000 00010000 0001 01 1003 /run/clamgate/clamd.sock\n")
	writeFile(t, procDir, "net/dev", devHeader+"    lo: 0 0\n  eth0: 0 0\n")

	writeFile(t, sysDir, "fs/cgroup/cgroup.controllers", "cpu memory pids\n")
	writeFile(t, sysDir, "fs/cgroup/machine.slice/libpod-abc.scope/memory.max", "3221225472\n")
	writeFile(t, sysDir, "fs/cgroup/machine.slice/libpod-abc.scope/container/memory.max", "max\n")
	writeFile(t, sysDir, "fs/cgroup/system.slice/system-clamd.slice/clamd@amavisd.service/memory.max", "max\n")

	lib := "usr/lib/systemd/system/"
	writeFile(t, root, lib+"amavisd.service", "[Unit]\nWants=clamd@amavisd.service\n[Service]\nExecStart=/usr/sbin/amavisd\n")
	writeFile(t, root, lib+"clamd@.service", "[Service]\nExecStart=/usr/sbin/clamd -c /etc/clamd.d/%i.conf\n")
	writeFile(t, root, lib+"clamav-daemon.service", "[Service]\nExecStart=/usr/sbin/clamd\n")
	symlink(t, root, "etc/systemd/system/clamav-daemon.service", "/dev/null")
	symlink(t, root, "etc/systemd/system/multi-user.target.wants/clamav-freshclam.service", "/"+lib+"clamav-freshclam.service")
	writeFile(t, root, "etc/systemd/system/clamgate.service", hardenedUnit)
	writeFile(t, root, doctor.ClamdQuadlet, "[Container]\nImage=docker.io/clamav/clamav@"+digest+"\n")
	writeFile(t, root, "etc/systemd/system/"+doctor.ClamdPlainUnit, "[Service]\nExecStart=/usr/bin/podman run --rm --name clamd -v /run/clamd:/tmp docker.io/clamav/clamav:stable\n")
	writeFile(t, root, "etc/amavis/conf.d/15-av_scanners", avScanners("/run/clamgate/amavis.sock"))
	writeCVD(t, filepath.Join(root, "var/lib/clamav/main.cvd"), 62, now.Add(-400*24*time.Hour))
	writeCVD(t, filepath.Join(root, "var/lib/clamav/daily.cld"), 27100, now.Add(-30*time.Hour))
	must(t, os.MkdirAll(filepath.Join(root, "run/clamgate"), 0o755))
	for _, s := range []string{"clamd.sock", "amavis.sock"} {
		deadSocket(t, filepath.Join(root, "run/clamgate", s))
		must(t, os.Chmod(filepath.Join(root, "run/clamgate", s), 0o660))
	}
	return procDir, sysDir, root
}

// fakeProber refuses nobody and anyone without group 961, the usual
// clamav-clients: the amavisd of the fake host dropped it.
type fakeProber struct{}

func (fakeProber) Probe(_ context.Context, _, _ string, c doctor.Cred, _ bool) doctor.ProbeResult {
	if c.UID == nobody || !slices.Contains(c.Groups, 961) {
		return doctor.ProbeResult{Refused: true, Err: "dial unix: connect: permission denied"}
	}
	return doctor.ProbeResult{Connected: true, Reply: "PONG"}
}

// pongDialer answers PING on every unix address, as the gateway would,
// and a stream with OK, as a clamd without AlertExceedsMax does for one
// past its limits.
func pongDialer(_ context.Context, network, _ string) (net.Conn, error) {
	if network != "unix" {
		return nil, errors.New("connection refused")
	}
	client, server := net.Pipe()
	go func() {
		defer server.Close()
		b := make([]byte, 10)
		n, _ := server.Read(b)
		if string(b[:n]) != "zINSTREAM\x00" {
			server.Write([]byte("PONG\x00"))
			return
		}
		for {
			var size [4]byte
			if _, err := io.ReadFull(server, size[:]); err != nil {
				return
			}
			n := binary.BigEndian.Uint32(size[:])
			if n == 0 {
				break
			}
			if _, err := io.CopyN(io.Discard, server, int64(n)); err != nil {
				return
			}
		}
		server.Write([]byte("stream: OK\x00"))
	}()
	return client, nil
}

func goldenEnv(t *testing.T) *doctor.Env {
	procDir, sysDir, root := fakeHost(t)
	cfg, err := config.Parse("clamgate.toml", []byte(`
[backend]
address = "unix:/run/clamd-container/clamd.sock"
[[listener]]
address = "unix:/run/clamgate/clamd.sock"
policy = "local"
mode = "0660"
group = "root"
[[listener]]
address = "unix:/run/clamgate/amavis.sock"
policy = "amavis"
mode = "0660"
group = "root"
[[listener]]
address = "tcp:127.0.0.1:1344"
protocol = "icap"
policy = "squid"
[policy.local]
[policy.amavis]
users = ["root"]
[policy.squid]
`))
	must(t, err)
	return &doctor.Env{
		Proc: procDir, Sys: sysDir, Root: root, Now: now,
		ConfigPath: filepath.Join(root, doctor.DefaultConfig), Config: cfg,
		Ports: []int{3310, 1344, 7357},
		Dial:  pongDialer, Probe: fakeProber{},
		Analyze: func(context.Context, string) (string, error) {
			return "✓ UMask= ...\n\n→ Overall exposure level for clamgate.service: 0.4 SAFE 😀\n", nil
		},
	}
}

func TestGolden(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the fake host's sockets must belong to root:root, as the golden file says")
	}
	rep := doctor.Run(context.Background(), goldenEnv(t))
	var table, js bytes.Buffer
	must(t, doctor.WriteTable(&table, rep, false))
	must(t, doctor.WriteJSON(&js, rep))
	golden(t, "testdata/doctor.txt.golden", table.Bytes())
	golden(t, "testdata/doctor.json.golden", js.Bytes())
	if rep.ExitCode() != 2 {
		t.Errorf("exit code %d, want 2", rep.ExitCode())
	}
	var colour bytes.Buffer
	must(t, doctor.WriteTable(&colour, rep, true))
	if !strings.Contains(colour.String(), "\x1b[31mFAIL\x1b[0m") || strings.Contains(table.String(), "\x1b[") {
		t.Error("colour only when asked for")
	}
}

// TestJSONSchema pins the schema monitoring scripts read, key by key.
func TestJSONSchema(t *testing.T) {
	b, err := os.ReadFile("testdata/doctor.json.golden")
	must(t, err)
	var doc map[string]any
	must(t, json.Unmarshal(b, &doc))
	if got := keys(doc); !reflect.DeepEqual(got, []string{"checks", "summary"}) {
		t.Errorf("top level keys %v", got)
	}
	if got := keys(doc["summary"].(map[string]any)); !reflect.DeepEqual(got, []string{"fail", "pass", "warn"}) {
		t.Errorf("summary keys %v", got)
	}
	ids := map[string]bool{}
	for _, c := range doc["checks"].([]any) {
		row := c.(map[string]any)
		if got := keys(row); !reflect.DeepEqual(got, []string{"expected", "fix", "id", "measured", "source", "status", "title"}) {
			t.Errorf("check keys %v", got)
		}
		id := row["id"].(string)
		if ids[id] {
			t.Errorf("duplicate id %s", id)
		}
		ids[id] = true
		if st := row["status"]; st != "pass" && st != "warn" && st != "fail" {
			t.Errorf("%s: status %v", id, st)
		}
		if (row["status"] == "pass") != (row["fix"] == "") {
			t.Errorf("%s: fix %q with status %v", id, row["fix"], row["status"])
		}
		// Each row carries its own reason and the section that explains
		// it; docs_test checks that the section exists.
		if src := row["source"].(string); !strings.HasSuffix(src, " docs/doctor.md#"+id) || len(src) < 60 {
			t.Errorf("%s: source %q is not a reason followed by docs/doctor.md#%s", id, src, id)
		}
	}
	if len(ids) < 20 {
		t.Errorf("%d checks, want 20", len(ids))
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		must(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	must(t, err)
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update to accept):\n%s", path, got)
	}
}
