package config

import (
	"os"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// TestPackagedSocket: the package's clamgate.socket binds, for systemd to
// hold across restarts, exactly the unix listeners of the package's
// clamgate.toml, with their mode and group: the gateway takes a socket
// from systemd by its address, as it is, so a socket that drifted from its
// listener would serve with other permissions, or not at all.
func TestPackagedSocket(t *testing.T) {
	unit, err := os.ReadFile("../../packaging/debian/clamgate.socket")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../../packaging/debian/clamgate.toml")
	if err != nil {
		t.Fatal(err)
	}
	var f file
	if err := toml.Unmarshal(src, &f); err != nil {
		t.Fatal(err)
	}
	set := map[string][]string{}
	for _, line := range strings.Split(string(unit), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			set[k] = append(set[k], v)
		}
	}
	var want []string
	for _, l := range f.Listener {
		path, ok := strings.CutPrefix(l.Address, "unix:")
		if !ok {
			continue
		}
		want = append(want, path)
		if mode, err := ParseMode(set["SocketMode"][0]); err != nil || Mode(mode) != l.Mode {
			t.Errorf("%s: SocketMode=%s, the listener's mode is %o", path, set["SocketMode"][0], l.Mode)
		}
		if set["SocketGroup"][0] != l.Group {
			t.Errorf("%s: SocketGroup=%s, the listener's group is %q", path, set["SocketGroup"][0], l.Group)
		}
	}
	if strings.Join(set["ListenStream"], " ") != strings.Join(want, " ") {
		t.Errorf("clamgate.socket listens on %q; the packaged unix listeners are %q", set["ListenStream"], want)
	}
}
