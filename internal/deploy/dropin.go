package deploy

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/coreos/go-systemd/v22/unit"
)

// Where the Debian package (scripts/package.sh) puts the gateway's unit and
// user; deploy then adds to them instead of writing its own copies.
const (
	GatewayDropIn     = "/etc/systemd/system/clamgate.service.d/deploy.conf"
	PackagedSysusers  = "/usr/lib/sysusers.d/clamgate.conf"
	packagedUnitName  = "clamgate.service"
	dropInExplanation = `# Only what the deployment adds to or changes in the packaged clamgate.service:
# the engine, the sockets, the network lockdown and the memory caps. A list
# setting adds up across files, so each is emptied first, then set whole.
`
)

// packagedUnitDirs are where a package puts its units; /etc is the
// administrator's and deploy's.
var packagedUnitDirs = []string{"/usr/lib/systemd/system", "/lib/systemd/system"}

// listKeys are the [Service] settings whose assignments accumulate; an
// empty assignment resets them (systemd.exec(5), systemd.resource-control(5)).
var listKeys = []string{
	"ExecStart", "ExecReload", "Environment", "ReadWritePaths", "ReadOnlyPaths", "InaccessiblePaths",
	"RestrictAddressFamilies", "SystemCallFilter", "IPAddressDeny", "IPAddressAllow",
	"CapabilityBoundingSet", "AmbientCapabilities",
}

// dependencyKeys are the [Unit] settings a drop-in adds to.
var dependencyKeys = []string{"Requires", "Wants", "BindsTo", "After", "Before"}

// undone are packaged settings the full unit leaves out on purpose: the
// value that turns each off, after a comment saying why (GatewayUnitFile).
var undone = map[string][2]string{
	"RestrictSUIDSGID": {"no", "# Under RestrictSUIDSGID= systemd 252 makes openat2 fail (ENOSYS); path scans use it.\n"},
}

// GatewayDropInFile is the drop-in that makes the packaged unit behave as
// GatewayUnitFile: the full unit's dependencies the package lacks, and every
// [Service] setting whose effective value differs. It is computed from the
// packaged file rather than written by hand so that a package that gains
// a setting makes the drop-in shorter, not contradictory.
func GatewayDropInFile(full, packaged []byte) (string, error) {
	want, err := unit.DeserializeOptions(bytes.NewReader(full))
	if err != nil {
		return "", fmt.Errorf("the gateway unit: %w", err)
	}
	have, err := unit.DeserializeOptions(bytes.NewReader(packaged))
	if err != nil {
		return "", fmt.Errorf("the packaged %s: %w", packagedUnitName, err)
	}
	var b strings.Builder
	b.WriteString(header + dropInExplanation + "[Unit]\n")
	for _, o := range want {
		if o.Section == "Unit" && slices.Contains(dependencyKeys, o.Name) {
			if add := missing(strings.Fields(o.Value), have, o.Name); len(add) > 0 {
				b.WriteString(o.Name + "=" + strings.Join(add, " ") + "\n")
			}
		}
	}
	b.WriteString("\n[Service]\n")
	done := map[string]bool{}
	for _, o := range want {
		if o.Section != "Service" || done[o.Name] {
			continue
		}
		done[o.Name] = true
		w, h := values(want, o.Name), values(have, o.Name)
		switch {
		case slices.Contains(listKeys, o.Name) && !slices.Equal(w, h):
			b.WriteString(o.Name + "=\n")
			for _, v := range w {
				b.WriteString(o.Name + "=" + v + "\n")
			}
		case !slices.Contains(listKeys, o.Name) && last(w) != last(h):
			b.WriteString(o.Name + "=" + last(w) + "\n")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(undone)) {
		off := undone[name]
		if h := values(have, name); len(h) > 0 && !done[name] && last(h) != off[0] {
			b.WriteString(off[1] + name + "=" + off[0] + "\n")
		}
	}
	return b.String(), nil
}

// missing are the units a dependency names that the packaged unit's
// [Unit] does not already name under the same key.
func missing(units []string, have []*unit.UnitOption, key string) []string {
	var named []string
	for _, o := range have {
		if o.Section == "Unit" && o.Name == key {
			named = append(named, strings.Fields(o.Value)...)
		}
	}
	return slices.DeleteFunc(units, func(u string) bool { return slices.Contains(named, u) })
}

// values are a [Service] setting's assignments after the last reset.
func values(opts []*unit.UnitOption, name string) []string {
	var out []string
	for _, o := range opts {
		if o.Section != "Service" || o.Name != name {
			continue
		}
		if o.Value == "" {
			out = out[:0]
			continue
		}
		out = append(out, o.Value)
	}
	return out
}

// last is a plain setting's effective value; "" when unset.
func last(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}
