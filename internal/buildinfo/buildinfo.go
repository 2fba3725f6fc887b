// Package buildinfo says which clamgate this is: the module version and VCS
// revision Go stamps into every binary, and the Debian package version the
// packaging script stamps in with -ldflags. An administrator asking "which
// build runs here" gets the same answer from `clamgate version`, the start
// log line and /metrics.
package buildinfo

import (
	"cmp"
	"fmt"
	"runtime/debug"
	"strings"
)

// packageVersion is set by scripts/package.sh:
// -ldflags "-X clamgate/internal/buildinfo.packageVersion=0.3.0-1".
// A linker-set string is the only way to carry it; nothing writes it at run time.
var packageVersion string

// Info describes the running binary.
type Info struct {
	Module    string // module version: "(devel)" for a build from a checkout
	Revision  string // VCS revision, "" when built without VCS information
	Time      string // commit time, RFC 3339
	Modified  bool   // built from a tree with uncommitted changes
	Package   string // Debian package version, "" outside a package
	GoVersion string
}

// Read returns what the binary knows about itself.
func Read() Info {
	info := Info{Module: "(devel)", Package: packageVersion}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	info.GoVersion = bi.GoVersion
	if bi.Main.Version != "" {
		info.Module = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// Version is the one short string for logs: the package version when
// packaged, else the module version with the revision.
func (i Info) Version() string {
	if i.Package != "" {
		return i.Package
	}
	v := i.Module
	if i.Revision != "" {
		v += "+" + shortRev(i.Revision)
		if i.Modified {
			v += ".dirty"
		}
	}
	return v
}

// String is what `clamgate version` prints, one fact a line.
func (i Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "clamgate %s\n", i.Version())
	fmt.Fprintf(&b, "module:   %s\n", i.Module)
	rev := cmp.Or(i.Revision, "unknown")
	if i.Modified {
		rev += " (modified)"
	}
	fmt.Fprintf(&b, "revision: %s\n", rev)
	if i.Time != "" {
		fmt.Fprintf(&b, "time:     %s\n", i.Time)
	}
	fmt.Fprintf(&b, "package:  %s\n", cmp.Or(i.Package, "none (not built by scripts/package.sh)"))
	fmt.Fprintf(&b, "go:       %s\n", i.GoVersion)
	return b.String()
}

func shortRev(r string) string {
	if len(r) > 12 {
		return r[:12]
	}
	return r
}
