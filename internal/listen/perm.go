package listen

import (
	"os"

	"clamgate/internal/addr"
)

// Repermission gives the unix socket bound for old the mode, owner and
// group next asks for, in place: the socket stays open and its accepted
// connections go on. On the way it is never more open than under either
// setting: first narrowed to the rights both modes grant, then handed to
// its new owner and group, then given its new mode. TCP sockets have no
// such rights; for them it does nothing.
func Repermission(old, next Spec) error {
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
	if err := os.Chmod(path, old.Mode.Perm()&next.Mode.Perm()); err != nil {
		return err
	}
	if err := os.Lchown(path, newUID, newGID); err != nil {
		return err
	}
	return os.Chmod(path, next.Mode.Perm())
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
