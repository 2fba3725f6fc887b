package deploy

import (
	"slices"
	"strings"
	"testing"
)

func TestUnitDependencies(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       []UnitDependency
	}{
		{"several per key, several keys", "[Unit]\nWants=a.service b.service\nRequires=c.socket\nAfter=d.service\n",
			[]UnitDependency{{"Wants", "a.service"}, {"Wants", "b.service"}, {"Requires", "c.socket"}}},
		{"all kinds", "[Unit]\nRequisite=a\nBindsTo=b\nUpholds=c\n",
			[]UnitDependency{{"Requisite", "a"}, {"BindsTo", "b"}, {"Upholds", "c"}}},
		{"other sections do not count", "[Install]\nWantedBy=multi-user.target\n[Service]\nWants=x.service\n", nil},
		{"comments and continued lines", "[Unit]\n# Wants=no.service\n; Requires=no.service\nWants=a.service \\\n  b.service\n",
			[]UnitDependency{{"Wants", "a.service"}, {"Wants", "b.service"}}},
		{"drop-in", "[Unit]\nWants=clamd@scan.service\n", []UnitDependency{{"Wants", "clamd@scan.service"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := UnitDependencies([]byte(tc.file))
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("UnitDependencies = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if got, _ := UnitDependencies([]byte("Wants=a.service\n")); got != nil {
		t.Errorf("no section: %v; want nothing", got)
	}
}

// TestListening: clamgate.socket binds every listener deploy writes, so
// that a restart refuses no client on any of them; a unix listener that
// names its owner or group, or has another mode, stays the gateway's.
func TestListening(t *testing.T) {
	for _, host := range []string{"debian", "rocky"} {
		p := plan(t, fixture(t, host))
		toml := GatewayTOML(p.Host, p.Engine)
		l, err := listening([]byte(toml))
		must(t, err)
		want := []string{AmavisSockDir + "/clamd.sock", PostfixSockDir + "/milter.sock", LocalSocket}
		if host == "rocky" {
			want = slices.DeleteFunc(want, func(s string) bool { return !strings.Contains(toml, `"unix:`+s+`"`) })
		}
		if !slices.Equal(l.Unix, want) || l.Mode != "0660" || !slices.Equal(l.TCP, []string{"127.0.0.1:1344", "127.0.0.1:9310"}) || !p.Socket {
			t.Errorf("%s: clamgate.socket binds %+v (socket %v); want unix %q mode 0660 and both TCP listeners", host, l, p.Socket, want)
		}
	}
	l, err := listening([]byte(`
[[listener]]
address = "unix:/run/a.sock"
mode = "0600"
[[listener]]
address = "unix:/run/b.sock"
[[listener]]
address = "unix:/run/c.sock"
mode = "0600"
group = "mail"
[[listener]]
address = "tls:127.0.0.1:3311"
`))
	must(t, err)
	if !slices.Equal(l.Unix, []string{"/run/a.sock"}) || l.Mode != "0600" || l.TCP != nil {
		t.Errorf("mixed listeners: %+v; want only /run/a.sock, mode 0600", l)
	}
}
