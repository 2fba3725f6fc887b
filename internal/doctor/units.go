package doctor

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"clamgate/internal/deploy"
)

// unitDirs in systemd's order of precedence: a unit in /etc hides the
// package's copy of the same name.
var unitDirs = []string{"/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"}

// dep is one dependency of a unit on another.
type dep struct {
	from, kind, to, where string
}

// unitTree is what the unit directories under Root declare.
type unitTree struct {
	files  map[string]string // unit name -> the file systemd would load
	masked map[string]bool   // /etc/systemd/system/NAME -> /dev/null
	// dropIns are each unit's NAME.d/*.conf by file name: one in /etc hides
	// the package's of the same name, as in systemd.
	dropIns map[string]map[string]string
	deps    []dep
}

func readUnits(env *Env) *unitTree {
	t := &unitTree{files: map[string]string{}, masked: map[string]bool{}, dropIns: map[string]map[string]string{}}
	for _, d := range unitDirs {
		t.readDir(env, env.path(d), d == "/etc/systemd/system")
	}
	for _, name := range slices.Sorted(maps.Keys(t.files)) {
		t.parseDeps(name, t.files[name], env)
	}
	return t
}

func (t *unitTree) readDir(env *Env, dir string, etc bool) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		name, full := e.Name(), filepath.Join(dir, e.Name())
		fi, err := os.Stat(full)
		target, _ := os.Readlink(full)
		switch {
		case target == "/dev/null":
			if etc {
				t.masked[name] = true
			}
			if _, seen := t.files[name]; !seen {
				t.files[name] = "" // masked: loads nothing
			}
		case err == nil && fi.IsDir() && (strings.HasSuffix(name, ".wants") || strings.HasSuffix(name, ".requires")):
			t.readLinks(env, full, name)
		case err == nil && fi.IsDir() && strings.HasSuffix(name, ".d"):
			t.readDropIns(env, full, strings.TrimSuffix(name, ".d"))
		case err == nil && !fi.IsDir() && isUnitName(name):
			if _, seen := t.files[name]; !seen {
				t.files[name] = full
			}
		}
	}
}

func isUnitName(name string) bool {
	for _, s := range []string{".service", ".target", ".socket", ".timer", ".path", ".mount"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// readLinks reads the symlinks `systemctl enable` makes: each is a Wants=.
func (t *unitTree) readLinks(env *Env, dir, name string) {
	entries, _ := os.ReadDir(dir)
	kind := "Wants"
	if strings.HasSuffix(name, ".requires") {
		kind = "Requires"
	}
	from := strings.TrimSuffix(strings.TrimSuffix(name, ".wants"), ".requires")
	for _, e := range entries {
		t.deps = append(t.deps, dep{from: from, kind: kind + " (link)", to: e.Name(), where: env.display(filepath.Join(dir, e.Name()))})
	}
}

func (t *unitTree) readDropIns(env *Env, dir, unit string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".conf") {
			continue
		}
		if t.dropIns[unit] == nil {
			t.dropIns[unit] = map[string]string{}
		}
		if _, hidden := t.dropIns[unit][e.Name()]; !hidden {
			t.dropIns[unit][e.Name()] = filepath.Join(dir, e.Name())
		}
		t.parseDeps(unit, filepath.Join(dir, e.Name()), env)
	}
}

// dropInsOf are the drop-ins systemd applies to name, in its order (by
// file name).
func (t *unitTree) dropInsOf(name string) []string {
	var out []string
	for _, base := range slices.Sorted(maps.Keys(t.dropIns[name])) {
		out = append(out, t.dropIns[name][base])
	}
	return out
}

func (t *unitTree) parseDeps(unit, file string, env *Env) {
	if file == "" {
		return
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return
	}
	deps, _ := deploy.UnitDependencies(b)
	for _, d := range deps {
		t.deps = append(t.deps, dep{from: unit, kind: d.Kind, to: d.Unit, where: env.display(file)})
	}
}

// isMasked also accepts a masked template for its instances.
func (t *unitTree) isMasked(name string) bool {
	if t.masked[name] {
		return true
	}
	if prefix, _, ok := strings.Cut(name, "@"); ok {
		return t.masked[prefix+"@"+name[strings.LastIndex(name, "."):]]
	}
	return false
}

// find returns the file systemd would load for name, or "".
func (t *unitTree) find(name string) string { return t.files[name] }

func joinSemi(parts []string) string { return strings.Join(parts, "; ") }
