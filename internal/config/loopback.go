package config

import (
	"fmt"
	"net"
)

// loopback tells what the text of a host:port says of where it binds: an
// IP address is loopback or not, "localhost" is; any other name is named,
// and what it resolves to is the host's answer, which the start-up checks
// ask (internal/startup, as listen.CheckTCP does again at bind), so that
// the file reads the same on every host.
func loopback(hostPort string) (isLoopback, named bool, err error) {
	host, _, err := net.SplitHostPort(hostPort)
	if err != nil {
		return false, false, err
	}
	ip := net.ParseIP(host)
	switch {
	case host == "localhost":
		return true, false, nil
	case ip != nil:
		return ip.IsLoopback(), false, nil
	}
	return false, host != "", nil
}

// checkLoopback refuses a TCP address beyond loopback unless allowed; a
// name is left to the start-up checks.
func checkLoopback(hostPort string, allow bool) error {
	lo, named, err := loopback(hostPort)
	if err != nil || allow || lo || named {
		return err
	}
	return fmt.Errorf("tcp address %q is not loopback (set allow_non_loopback to bind it)", hostPort)
}

// surelyLoopback is for the rules that serve clients without credentials
// on loopback only: a name the file cannot vouch for counts as beyond it.
func surelyLoopback(hostPort string) bool {
	lo, _, err := loopback(hostPort)
	return err == nil && lo
}
