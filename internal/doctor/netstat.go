package doctor

import (
	"bufio"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// sock is one listening socket of a network namespace.
type sock struct {
	Inode uint64
	IP    net.IP // nil for unix sockets
	Port  int
	Path  string // unix sockets; "@name" for abstract ones
}

func (s sock) String() string {
	if s.IP == nil {
		return "unix:" + s.Path
	}
	return net.JoinHostPort(s.IP.String(), strconv.Itoa(s.Port))
}

const tcpListen = "0A"

// procNetRows splits each row of a /proc/.../net table into its fields;
// nil when the table cannot be read.
func procNetRows(path string) [][]string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var rows [][]string
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		rows = append(rows, strings.Fields(sc.Text()))
	}
	return rows
}

// readTCP reads the listening sockets of /proc/.../net/tcp or tcp6.
func readTCP(path string) []sock {
	var out []sock
	for _, fs := range procNetRows(path) {
		if len(fs) < 10 || fs[3] != tcpListen {
			continue
		}
		ip, port, ok := parseHexAddr(fs[1])
		inode, err := strconv.ParseUint(fs[9], 10, 64)
		if ok && err == nil {
			out = append(out, sock{Inode: inode, IP: ip, Port: port})
		}
	}
	return out
}

// parseHexAddr decodes "0100007F:0CEE": the address is stored as 32-bit
// words in the kernel's (little-endian here) byte order, the port in hex.
func parseHexAddr(s string) (net.IP, int, bool) {
	a, p, ok := strings.Cut(s, ":")
	raw, err := hex.DecodeString(a)
	port, perr := strconv.ParseUint(p, 16, 16)
	if !ok || err != nil || perr != nil || (len(raw) != 4 && len(raw) != 16) {
		return nil, 0, false
	}
	ip := make(net.IP, len(raw))
	for i := 0; i < len(raw); i += 4 {
		ip[i], ip[i+1], ip[i+2], ip[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	return ip, int(port), true
}

const unixAcceptConn = 0x10000 // __SO_ACCEPTCON: a listening unix socket

// readUnix reads the listening unix sockets of /proc/.../net/unix.
func readUnix(path string) []sock {
	var out []sock
	for _, fs := range procNetRows(path) {
		if len(fs) < 8 {
			continue
		}
		flags, _ := strconv.ParseUint(fs[3], 16, 32)
		inode, err := strconv.ParseUint(fs[6], 10, 64)
		if flags&unixAcceptConn == 0 || err != nil {
			continue
		}
		out = append(out, sock{Inode: inode, Path: fs[7]})
	}
	return out
}

// netTable is the listening sockets of one network namespace, read through
// a process of that namespace (or the proc root's own net/ for the host).
type netTable struct {
	tcp, unix []sock
	loOnly    bool // the namespace has no interface but loopback
}

func readNetTable(netDir string) netTable {
	t := netTable{
		tcp:  append(readTCP(filepath.Join(netDir, "tcp")), readTCP(filepath.Join(netDir, "tcp6"))...),
		unix: readUnix(filepath.Join(netDir, "unix")),
	}
	t.loOnly = onlyLoopback(filepath.Join(netDir, "dev"))
	return t
}

// onlyLoopback reads net/dev: with nothing but lo, a wildcard bind is a
// loopback bind in effect (podman's Network=none).
func onlyLoopback(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 3 {
		return false
	}
	for _, l := range lines[2:] {
		name, _, _ := strings.Cut(strings.TrimSpace(l), ":")
		if name != "lo" {
			return false
		}
	}
	return true
}
