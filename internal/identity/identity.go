// Package identity establishes who the client of a connection is and
// whether a client policy admits it. The gateway decides this once per
// connection, on accept and before any byte is read; the protocol fronts
// never import this package (internal/deps_test.go) and only word the
// refusal they are handed, so that a new front cannot forget the check.
package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"unsafe"

	"clamgate/internal/policy"

	"golang.org/x/sys/unix"
)

// Identity is what the gateway knows of one connection's client: for a
// unix socket the kernel's word (SO_PEERCRED, SO_PEERGROUPS), over TCP
// its address only (the listener decides), over TLS the client
// certificate the handshake verified, so that every front inherits it.
type Identity struct {
	Peer policy.Peer
	// Cert is the verified client certificate of a TLS connection; nil
	// otherwise (or when the listener takes anonymous clients).
	Cert *x509.Certificate
	tls  bool // a TLS connection: its policy is chosen by Choose
	// unverified is why a unix peer's credentials could not be read. Such
	// a peer is never admitted: taking it for a TCP client would let any
	// local user in whenever the kernel does not answer.
	unverified error
}

// errNoCredentials: the reason has no colon, since clamdscan prints only
// what follows the last one of a refusal.
var errNoCredentials = errors.New("peer credentials could not be read")

// Of identifies the client at the other end of conn, accepted on listener.
func Of(conn net.Conn, listener string) Identity {
	id := Identity{Peer: policy.Peer{Listener: listener, Remote: conn.RemoteAddr().String()}}
	if tc, ok := conn.(*tls.Conn); ok {
		return id.withCert(tc)
	}
	if !strings.HasPrefix(conn.LocalAddr().Network(), "unix") {
		return id
	}
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		id.unverified = errNoCredentials
		return id
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		id.unverified = errNoCredentials
		return id
	}
	var cred *unix.Ucred
	_ = raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		id.Peer.Groups = peerGroups(int(fd))
	})
	if err != nil || cred == nil {
		id.unverified = errNoCredentials
		return id
	}
	id.Peer.HasCreds = true
	id.Peer.UID, id.Peer.GID, id.Peer.PID = cred.Uid, cred.Gid, cred.Pid
	id.Peer.Remote = fmt.Sprintf("pid %d", cred.Pid)
	return id
}

// Admit checks the client against the policy's users and groups: nil when
// it may be served. A unix peer whose credentials could not be read is
// refused; a TCP client is admitted by its listener alone.
func (id Identity) Admit(p *policy.Policy) error {
	if id.unverified != nil {
		return id.unverified
	}
	peer := id.Peer
	if !peer.HasCreds || (len(p.UIDs) == 0 && len(p.GIDs) == 0) {
		return nil
	}
	if slices.Contains(p.UIDs, peer.UID) || slices.Contains(p.GIDs, peer.GID) {
		return nil
	}
	for _, g := range peer.Groups {
		if slices.Contains(p.GIDs, g) {
			return nil
		}
	}
	return fmt.Errorf("uid %d, gid %d not allowed by client policy %q", peer.UID, peer.GID, p.Name)
}

// peerGroups reads the peer's supplementary groups as they were when it
// connected (SO_PEERGROUPS). Unlike /proc/PID/status this needs no view of
// other users' processes (the hardened unit's ProtectProc=invisible) and
// cannot race with the peer's exit and its pid's reuse, so there is no
// fallback to it: the buffer grows to the size the kernel asks for, and a
// kernel that cannot say yields no groups (a policy's groups then admit
// the peer by its primary group only). Never nil.
func peerGroups(fd int) []uint32 {
	buf := make([]uint32, 64)
	for range 4 {
		size := uint32(len(buf) * 4)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		switch {
		case errno == 0:
			return buf[: size/4 : size/4]
		case errno == unix.ERANGE && int(size/4) > len(buf):
			buf = make([]uint32, size/4) // the kernel said how many there are
		default:
			return []uint32{}
		}
	}
	return []uint32{}
}
