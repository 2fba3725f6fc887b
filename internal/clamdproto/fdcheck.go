package clamdproto

import (
	"fmt"
	"os"

	"clamgate/internal/pathscan"

	"golang.org/x/sys/unix"
)

// checkFildes refuses a descriptor the client could not have read itself:
// clamd answers OK for a write-only or O_PATH descriptor it cannot read,
// so only a regular file open for reading proves the client's access and
// yields a real verdict. The reply is in clamd's words for a descriptor
// it refuses ("fd[N]: Not a regular file ERROR"), "" when f may be scanned.
func checkFildes(f *os.File) string {
	fd := int(f.Fd())
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return fmt.Sprintf("fd[%d]: %s ERROR", fd, pathscan.Strerror(err))
	}
	if flags&unix.O_PATH != 0 || flags&unix.O_ACCMODE == unix.O_WRONLY {
		return fmt.Sprintf("fd[%d]: Not open for reading ERROR", fd)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Sprintf("fd[%d]: %s ERROR", fd, pathscan.Strerror(err))
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Sprintf("fd[%d]: Not a regular file ERROR", fd)
	}
	return ""
}
