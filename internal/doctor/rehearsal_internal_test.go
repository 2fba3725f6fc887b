package doctor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestIsAmavisdDebian: Debian 12's amavisd keeps its path in the name it
// gives itself, and its comm is cut to 15 bytes; the rehearsal's doctor
// saw no amavisd at all and warned on amavis-groups.
func TestIsAmavisdDebian(t *testing.T) {
	for _, c := range []struct {
		p    process
		want bool
	}{
		{process{Comm: "/usr/sbin/amavi", Args: []string{"/usr/sbin/amavisd (master)"}, Exe: "/usr/bin/perl"}, true},
		{process{Comm: "/usr/sbin/amavi", Args: []string{"/usr/sbin/amavisd (virgin child)"}, Exe: "/usr/bin/perl"}, true},
		{process{Comm: "amavisd", Args: []string{"amavisd (master)"}}, true},
		{process{Comm: "perl", Args: []string{"/usr/bin/perl", "/usr/sbin/amavisd"}}, true},
		{process{Comm: "clamd", Args: []string{"/usr/sbin/clamd"}}, false},
		{process{Comm: "sh", Args: []string{"/usr/sbin/amavisd-release"}}, false},
	} {
		if got := isAmavisd(&c.p); got != c.want {
			t.Errorf("isAmavisd(%q %q) = %v, want %v", c.p.Comm, c.p.Args, got, c.want)
		}
	}
}

// TestMemoryLimitUnderMountRoot: inside a container without a cgroup
// namespace (the rehearsal host on cgroup v1), the memory hierarchy is
// mounted from the container's own cgroup while /proc/PID/cgroup names the
// full path; the limit must be found beneath the mount, not missed.
func TestMemoryLimitUnderMountRoot(t *testing.T) {
	proc, sys := t.TempDir(), t.TempDir()
	const outer = "/libpod_parent/libpod-abc"
	const unit = "/system.slice/clamgate-clamd.service/libpod-payload-def"
	mnt := filepath.Join(sys, "fs", "cgroup", "memory")
	write := func(path, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(proc, "self", "mountinfo"), strings.Join([]string{
		"117 106 0:52 / " + filepath.Join(sys, "fs", "cgroup") + " ro,nosuid - tmpfs tmpfs ro",
		"121 117 0:31 " + outer + " " + mnt + " rw,nosuid - cgroup cgroup rw,memory",
	}, "\n")+"\n")
	write(filepath.Join(proc, "42", "cgroup"), "4:memory:"+outer+outer+unit+"\n1:name=systemd:"+outer+unit+"\n")
	write(filepath.Join(mnt, "memory.limit_in_bytes"), "9223372036854771712\n")
	write(filepath.Join(mnt, outer, unit, "memory.limit_in_bytes"), "536870912\n")
	env := &Env{Proc: proc, Sys: sys}
	if got := cgroupMemoryLimit(env, 42); got != 536870912 {
		t.Errorf("limit = %d, want 536870912 (512 MiB, beneath the mount's root)", got)
	}
	for _, c := range [][3]string{{"/a/b", "/", "/a/b"}, {"/a/b", "/a", "/b"}, {"/a", "/a", "/"}, {"/ab/c", "/a", "/ab/c"}} {
		if got := beneath(c[0], c[1]); got != c[2] {
			t.Errorf("beneath(%q, %q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
}
