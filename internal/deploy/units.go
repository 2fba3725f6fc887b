package deploy

import (
	"bytes"
	"slices"
	"strings"

	"github.com/coreos/go-systemd/v22/unit"
)

// UnitDependency is one unit that a unit file's [Unit] section pulls in
// or refuses to start without.
type UnitDependency struct {
	Kind string // Wants, Requires, Requisite, BindsTo or Upholds
	Unit string
}

// dependencyKinds are the [Unit] keys that name units to start with this one.
var dependencyKinds = []string{"Wants", "Requires", "Requisite", "BindsTo", "Upholds"}

// UnitDependencies lists the dependencies a unit file or drop-in declares,
// read by go-systemd's parser as systemd reads it (comments, continued
// lines, a key repeated). A file it cannot parse declares none; callers
// that only look for dependencies may ignore the error.
func UnitDependencies(file []byte) ([]UnitDependency, error) {
	opts, err := unit.DeserializeOptions(bytes.NewReader(file))
	var out []UnitDependency
	for _, o := range opts {
		if o.Section != "Unit" || !slices.Contains(dependencyKinds, o.Name) {
			continue
		}
		// go-systemd keeps the backslash-newline of a continued line (to write
		// the file back); systemd reads it as a space.
		for _, name := range strings.Fields(strings.ReplaceAll(o.Value, "\\\n", " ")) {
			out = append(out, UnitDependency{Kind: o.Name, Unit: name})
		}
	}
	return out, err
}
