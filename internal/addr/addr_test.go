package addr

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    Addr
		wantErr bool
	}{
		{"unix:/run/clamgate/clamd.sock", Addr{Unix, "/run/clamgate/clamd.sock"}, false},
		{"unix:/a:b", Addr{Unix, "/a:b"}, false},
		{"tcp:127.0.0.1:3310", Addr{TCP, "127.0.0.1:3310"}, false},
		{"tcp:[::1]:3310", Addr{TCP, "[::1]:3310"}, false},
		{"tcp:localhost:3310", Addr{TCP, "localhost:3310"}, false},
		{"tcp::3310", Addr{TCP, ":3310"}, false},
		{"unix:relative.sock", Addr{}, true},
		{"unix:", Addr{}, true},
		{"tcp:127.0.0.1", Addr{}, true},
		{"tcp:127.0.0.1:", Addr{}, true},
		{"tcp:", Addr{}, true},
		{"udp:127.0.0.1:53", Addr{}, true},
		{"UNIX:/x", Addr{}, true},
		{"/run/clamd.sock", Addr{}, true},
		{"127.0.0.1:3310", Addr{}, true},
		{"", Addr{}, true},
		{"tls:gw.example:3311", Addr{TLS, "gw.example:3311"}, false},
		{"tls:gw.example", Addr{}, true},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("Parse(%q) = %+v, %v", tt.in, got, err)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("Parse(%q).String() = %q", tt.in, got.String())
		}
	}
	a, _ := Parse("tls:gw.example:3311")
	if err := a.NoTLS(); !errors.Is(err, ErrTLS) || a.Transport() != TCP {
		t.Errorf("tls: NoTLS %v (want ErrTLS), transport %q", err, a.Transport())
	}
}

func TestPath(t *testing.T) {
	if p := UnixPath("/x.sock").Path(); p != "/x.sock" {
		t.Errorf("unix Path() = %q", p)
	}
	if p := (Addr{TCP, "127.0.0.1:1"}).Path(); p != "" {
		t.Errorf("tcp Path() = %q", p)
	}
}

// FuzzParse: whatever an administrator writes, an accepted address prints
// back as written and names a unix path that is absolute or a tcp
// host:port.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"unix:/x", "tcp:127.0.0.1:1", "tls:a:1", "unix:x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Parse(s)
		if err != nil {
			return
		}
		if a.String() != s {
			t.Fatalf("%q parsed to %+v, printed %q", s, a, a.String())
		}
		if again, err := Parse(a.String()); err != nil || again != a {
			t.Fatalf("%q does not parse back: %+v %v", s, again, err)
		}
	})
}
