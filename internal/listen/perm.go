package listen

import (
	"fmt"
	"net"
	"os"

	"clamgate/internal/addr"

	"golang.org/x/sys/unix"
)

// Repermission gives the unix socket ln serves (bound for old) the mode,
// owner and group next asks for, in place: the socket stays open and its
// accepted connections go on. On the way it is never more open than under
// either setting: first narrowed to the rights both modes grant, then
// handed to its new owner and group, then given its new mode. Every change
// goes through one O_PATH|O_NOFOLLOW descriptor checked to be the socket
// file clamgate bound (device and inode): whoever may write the socket's
// directory cannot swap in a link and have root chmod its target. TCP
// sockets have no such rights; for them it does nothing.
func Repermission(ln net.Listener, old, next Spec) error {
	a, err := addr.Parse(next.Address)
	path := a.Path()
	if err != nil || path == "" {
		return nil
	}
	uid, gid := owner(old)
	newUID, newGID := owner(next)
	if old.Mode.Perm() == next.Mode.Perm() && uid == newUID && gid == newGID {
		return nil
	}
	ul, ok := ln.(*unixListener)
	if !ok {
		return fmt.Errorf("%s was not bound by clamgate (socket activation?): its mode, owner and group are the .socket unit's (SocketMode=, SocketUser=, SocketGroup=)", path)
	}
	fd, _, err := openSocketFile(path, ul.file)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := chmodFD(fd, path, old.Mode.Perm()&next.Mode.Perm()); err != nil {
		return err
	}
	if err := unix.Fchownat(fd, "", newUID, newGID, unix.AT_EMPTY_PATH); err != nil {
		return &os.PathError{Op: "chown", Path: path, Err: err}
	}
	return chmodFD(fd, path, next.Mode.Perm())
}

// owner is who a spec makes the socket's owner and group: -1 is the
// gateway's own, as when it was bound.
func owner(s Spec) (uid, gid int) {
	uid, gid = s.UID, s.GID
	if uid < 0 {
		uid = os.Geteuid()
	}
	if gid < 0 {
		gid = os.Getegid()
	}
	return uid, gid
}

// CheckInherited compares a unix socket that systemd bound (socket
// activation) with what spec asks of it: its mode and, where spec sets
// them, its owner and group. systemd sets them from the .socket unit
// (SocketMode=, SocketUser=, SocketGroup=); the gateway cannot change them.
func CheckInherited(spec Spec) error {
	a, err := addr.Parse(spec.Address)
	if err != nil || a.Path() == "" {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(a.Path(), &st); err != nil {
		return fmt.Errorf("socket from systemd: %w", err)
	}
	if mode := os.FileMode(st.Mode).Perm(); mode != spec.Mode.Perm() {
		return fmt.Errorf("%s has mode %04o from its .socket unit (SocketMode=), the listener asks for %04o", a.Path(), mode, spec.Mode.Perm())
	}
	if spec.UID >= 0 && int(st.Uid) != spec.UID {
		return fmt.Errorf("%s belongs to uid %d from its .socket unit (SocketUser=), the listener asks for %d", a.Path(), st.Uid, spec.UID)
	}
	if spec.GID >= 0 && int(st.Gid) != spec.GID {
		return fmt.Errorf("%s has group %d from its .socket unit (SocketGroup=), the listener asks for %d", a.Path(), st.Gid, spec.GID)
	}
	return nil
}
