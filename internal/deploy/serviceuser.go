package deploy

import (
	"bytes"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/coreos/go-systemd/v22/unit"
)

// ServiceUser is who a unit's processes run as: its User=, Group= and
// SupplementaryGroups= as systemd resolves them across the unit file and
// its drop-ins. User is "" when the unit is not installed or names none
// (then it runs as root).
type ServiceUser struct {
	User, Group   string
	Supplementary []string
	Files         []string // the files read, in systemd's order
}

// GatewayServiceUser reads clamgate.service under root.
func GatewayServiceUser(root string) (ServiceUser, error) {
	return readServiceUser(root, packagedUnitName)
}

// readServiceUser takes the unit file from the first unit directory that
// has it, then its drop-ins (name.d/*.conf) from every directory, a name
// in /etc hiding the same name further down, applied in name order.
func readServiceUser(root, name string) (ServiceUser, error) {
	var su ServiceUser
	for _, dir := range unitDirs {
		p := path.Join(dir, name)
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			su.Files = append(su.Files, p)
			break
		}
	}
	if len(su.Files) == 0 {
		return su, nil
	}
	dropIns := map[string]string{}
	for _, dir := range slices.Backward(unitDirs) {
		matches, _ := filepath.Glob(filepath.Join(root, dir, name+".d", "*.conf"))
		for _, m := range matches {
			dropIns[filepath.Base(m)] = path.Join(dir, name+".d", filepath.Base(m))
		}
	}
	for _, base := range slices.Sorted(maps.Keys(dropIns)) {
		su.Files = append(su.Files, dropIns[base])
	}
	for _, p := range su.Files {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			return su, err
		}
		opts, err := unit.DeserializeOptions(bytes.NewReader(b))
		if err != nil {
			return su, err
		}
		su.apply(opts)
	}
	return su, nil
}

func (su *ServiceUser) apply(opts []*unit.UnitOption) {
	for _, o := range opts {
		if o.Section != "Service" {
			continue
		}
		switch o.Name {
		case "User":
			su.User = o.Value
		case "Group":
			su.Group = o.Value
		case "SupplementaryGroups":
			if o.Value == "" {
				su.Supplementary = nil
			}
			su.Supplementary = append(su.Supplementary, strings.Fields(o.Value)...)
		}
	}
}
