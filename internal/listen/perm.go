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
