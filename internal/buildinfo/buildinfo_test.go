package buildinfo

import "testing"

func TestVersion(t *testing.T) {
	for _, tc := range []struct {
		name string
		info Info
		want string
	}{
		{"packaged", Info{Module: "v0.0.0-x", Revision: "abc", Package: "0.3.0-1"}, "0.3.0-1"},
		{"checkout", Info{Module: "v0.0.0-20261125222722-c7a3ad9f67b1", Revision: "c7a3ad9f67b1b284c93b"}, "v0.0.0-20261125222722-c7a3ad9f67b1+c7a3ad9f67b1"},
		{"dirty", Info{Module: "(devel)", Revision: "c7a3", Modified: true}, "(devel)+c7a3.dirty"},
		{"no vcs", Info{Module: "(devel)"}, "(devel)"},
	} {
		if got := tc.info.Version(); got != tc.want {
			t.Errorf("%s: Version() = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestReadNamesTheGoVersion(t *testing.T) {
	if i := Read(); i.GoVersion == "" || i.Module == "" {
		t.Errorf("Read() = %+v: the test binary's build info is missing", i)
	}
}
