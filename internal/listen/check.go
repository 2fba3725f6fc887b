package listen

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"clamgate/internal/addr"

	"golang.org/x/sys/unix"
)

// Check tells, without binding or changing anything, why Listen(spec)
// would fail in this process: a unix path that is not a socket, a
// directory it cannot create or write, an owner or group it may not give
// the socket, a TCP port below the unprivileged range. A socket another
// process serves is not an error here: a check runs while the gateway it
// checks for may be running.
func Check(spec Spec) error {
	a, err := addr.Parse(spec.Address)
	if err != nil {
		return err
	}
	if a.Path() == "" { // tcp: and tls:
		return CheckPort(a.Address)
	}
	address := a.Path()
	if fi, err := os.Lstat(address); err == nil && fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket", address)
	}
	if err := CheckDir(filepath.Dir(address)); err != nil {
		return err
	}
	return checkOwner(spec, filepath.Dir(address))
}

// CheckDir says whether this process can make entries in dir: write and
// search it, or, when it does not exist yet, create it (write and search
// its nearest existing ancestor), as os.MkdirAll then bind or create
// would.
func CheckDir(dir string) error {
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) && p != "/" {
			continue
		}
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", p)
		}
		if err := unix.Faccessat(unix.AT_FDCWD, p, unix.W_OK|unix.X_OK, unix.AT_EACCESS); err != nil {
			what := "write into"
			if p != dir {
				what = "create " + dir + " in"
			}
			return fmt.Errorf("uid %d cannot %s %s: %w", os.Geteuid(), what, p, err)
		}
		return nil
	}
}

// checkOwner: only root may give a socket to another user, and a user
// only to one of its own groups, or to the group the socket gets anyway
// from a setgid directory (the kernel lets an owner keep a file's group:
// postfix's milter directory, 2750 clamgate:postfix).
func checkOwner(spec Spec, dir string) error {
	euid := os.Geteuid()
	if euid == 0 {
		return nil
	}
	if spec.UID >= 0 && spec.UID != euid {
		return fmt.Errorf("uid %d cannot give its socket to uid %d (only root can)", euid, spec.UID)
	}
	if spec.GID < 0 || spec.GID == os.Getegid() || setgidTo(dir, spec.GID) {
		return nil
	}
	groups, _ := os.Getgroups()
	if !slices.Contains(groups, spec.GID) {
		return fmt.Errorf("uid %d cannot give its socket to group %d: not one of its groups", euid, spec.GID)
	}
	return nil
}

// CheckPort refuses a port below net.ipv4.ip_unprivileged_port_start for
// a process without CAP_NET_BIND_SERVICE.
func CheckPort(address string) error {
	_, port, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(port)
	if err != nil || n == 0 || bindCapable() {
		return nil
	}
	start := 1024
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			start = v
		}
	}
	if n < start {
		return fmt.Errorf("uid %d cannot bind port %d: below ip_unprivileged_port_start (%d), and it lacks CAP_NET_BIND_SERVICE", os.Geteuid(), n, start)
	}
	return nil
}

func bindCapable() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return os.Geteuid() == 0
	}
	return data[0].Effective&(1<<unix.CAP_NET_BIND_SERVICE) != 0
}

// setgidTo reports whether dir is a setgid directory of group gid, whose
// new entries are born in that group.
func setgidTo(dir string, gid int) bool {
	var st unix.Stat_t
	return unix.Stat(dir, &st) == nil && st.Mode&unix.S_ISGID != 0 && int(st.Gid) == gid
}
