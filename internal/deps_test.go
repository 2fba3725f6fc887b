// The module's import graph, stated once and checked against what `go list`
// reports, so that a front reaching the backend, a tool pulling in the
// server, or a test helper leaking into a binary fails here, by name.
//
// Run `go test -v -run TestImportGraph ./internal/` to print the graph as
// the test sees it.
package internal_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// allowed is the import graph of the module: one row per package, what its
// code may import, and what its tests may import besides.
//
// A bare name is internal/NAME; a name with a slash is a package of this
// module (bench/benchenv); a name with a dot in its first element is a
// third-party module (any package of it). The standard library is always
// allowed. "-" is an empty cell.
//
// To extend: a new package needs a row; a new import goes into its row
// (the third-party module, not the package). The rules below still apply
// whatever the table says.
const allowed = `
package             | imports (internal)                                                    | third-party modules                                                                  | tests also import
cmd/clamgate        | cli                                                                   | -                                                                                    | -
internal/cli        | addr buildinfo clamd config deploy doctor engine gateway identity manual milter scan sigdb startup tlsid | golang.org/x/sys                                                                     | testenv
internal/gateway    | clamd clamdproto config engine hangup httpapi icap identity kubelease listen metrics milter pathscan policy scan sigdb startup status tlsid | - | testenv testuser golang.org/x/sys github.com/d--j/go-milter
internal/engine     | clamd config rss sandbox sigdb                                        | golang.org/x/sys                                                                     | testuser
internal/testenv    | addr clamd config gateway                                             | -                                                                                    | -
internal/testuser   | -                                                                     | -                                                                                    | -
internal/clamdproto | listen pathscan policy scan                                            | golang.org/x/sys                                                                     | connfuzz
internal/icap       | config listen policy scan                                             | -                                                                                    | connfuzz deploy testenv tlsid
internal/httpapi    | pathscan policy scan                                                  | -                                                                                    | config internal/httpapi/apiclient testenv testuser github.com/getkin/kin-openapi
internal/httpapi/apiclient | -                                                               | github.com/oapi-codegen/runtime                                                      | -
internal/milter     | config policy scan                                                    | github.com/d--j/go-milter                                                            | connfuzz testenv
internal/connfuzz   | policy                                                                | -                                                                                    | -
internal/status     | addr listen                                                           | github.com/coreos/go-systemd/v22 golang.org/x/net golang.org/x/sys                   | metrics scan
internal/metrics    | buildinfo rss scan                                                    | github.com/prometheus/client_golang                                                  | github.com/prometheus/common
internal/startup    | addr config listen policy sigdb tlsid                                 | golang.org/x/sys                                                                     | -
internal/config     | addr policy scan tlsid                                                   | github.com/pelletier/go-toml/v2                                                      | -
internal/listen     | addr                                                                  | github.com/coreos/go-systemd/v22 golang.org/x/sys                                    | -
internal/kubelease  | -                                                                     | -                                                                                    | testenv k8s.io/api
internal/tlsid      | -                                                                     | github.com/fsnotify/fsnotify                                                         | -
internal/identity   | policy                                                                | golang.org/x/sys                                                                     | listen
internal/scan       | hangup                                                                | golang.org/x/sys                                                                     | hangup golang.org/x/sys
internal/addr       | -                                                                     | -                                                                                    | -
internal/rss        | -                                                                     | -                                                                                    | -
internal/hangup     | -                                                                     | golang.org/x/sys                                                                     | -
internal/sandbox    | -                                                                     | github.com/elastic/go-seccomp-bpf github.com/landlock-lsm/go-landlock golang.org/x/sys | -
internal/buildinfo  | -                                                                     | -                                                                                    | -
internal/manual     | -                                                                     | -                                                                                    | -
internal/pathscan   | policy scan                                                           | golang.org/x/sys                                                                     | -
internal/policy     | -                                                                     | golang.org/x/sys                                                                     | -
internal/clamd      | addr                                                                  | golang.org/x/sys                                                                     | testenv
internal/sigdb      | -                                                                     | github.com/fsnotify/fsnotify                                                         | testenv
internal/doctor     | addr clamd config deploy rss sigdb tlsid                              | golang.org/x/sys                                                                     | testenv
internal/deploy     | config sigdb tlsid                                                    | github.com/aymanbagabas/go-udiff github.com/coreos/go-systemd/v22 github.com/google/renameio/v2 github.com/pelletier/go-toml/v2 | clamd testenv
internal/clientmatrix | -                                                                   | -                                                                                    | config testenv github.com/dutchcoders/go-clamd
internal/chart      | -                                                                     | -                                                                                    | clamd config sigdb testenv k8s.io/api sigs.k8s.io/json sigs.k8s.io/yaml
internal/docs       | -                                                                     | -                                                                                    | cli
bench/benchenv      | addr clamd rss                                                        | -                                                                                    | -
bench/up            | bench/benchenv clamd                                                  | -                                                                                    | -
bench/gensigs       | -                                                                     | -                                                                                    | -
bench/poolsim       | -                                                                     | -                                                                                    | -
bench/httpfront     | -                                                                     | -                                                                                    | -
bench/instream      | bench/benchenv                                                        | -                                                                                    | -
bench/icap/load     | bench/benchenv                                                        | -                                                                                    | -
bench/memory        | bench/benchenv clamd config                                           | -                                                                                    | -
bench/milter        | bench/benchenv config                                                 | github.com/d--j/go-milter                                                            | -
bench/attack        | bench/benchenv clamd rss                                              | -                                                                                    | testuser
bench/neighbour     | bench/benchenv clamd config gateway                                   | -                                                                                    | -
bench/reload        | bench/benchenv clamd config gateway rss                               | -                                                                                    | -
`

// The architecture's rules. They are checked on the real graph, not on the
// table, so that widening a row cannot break them unnoticed; changing one
// is a design decision, made here, in review.
var (
	// fronts speak a client protocol. Any later front belongs here too;
	// until it is added, rule backend-side still keeps it off the backend.
	fronts = []string{"clamdproto", "httpapi", "icap", "milter"}
	// backend is what talks to clamd, or is clamd.
	backend = []string{"clamd", "engine"}
	// backendSide may reach the backend: the assembly behind the
	// dispatcher, the managed engine, and the tools that talk to a clamd
	// (scan, db, doctor's PING, the benchmarks, the test environment).
	backendSide = []string{"gateway", "engine", "clamd", "cli", "doctor", "testenv", "cmd/clamgate", "bench/..."}
	// tools inspect and change a host; they must not drag the server in.
	tools = []string{"doctor", "deploy"}
	// server is the serving code tools must not reach, even indirectly.
	// (scan and policy are not in it: config's validation uses their names.)
	server = append([]string{"gateway", "engine", "metrics", "status"}, fronts...)
	// identity decides who a client is and whether a policy admits it: the
	// gateway asks it once per connection; a front only words the refusal.
	identity = []string{"identity"}
	// belowFronts is what several fronts share (the confined directory
	// walk): fronts import it, and it serves them all alike, so it never
	// reaches a front (nor, by rule backend-side, the backend).
	belowFronts = []string{"pathscan"}
	// testHelpers are for _test.go files only.
	// (apiclient is the Go client generated from the HTTP front's OpenAPI
	// document, for its tests.)
	testHelpers = []string{"testenv", "connfuzz", "testuser", "internal/httpapi/apiclient"}
	// hostSide resolves names on the host, binds or checks sockets, and
	// makes what serves from the configuration; config itself stays data.
	hostSide = []string{"startup", "gateway", "identity", "listen", "engine", "clamd", "sigdb"}
	// hostLookups are the standard packages that ask the host's name
	// service or run programs.
	hostLookups = []string{"os/user", "os/exec"}
)

const (
	ruleTable       = "table: every import of a package is in its row of `allowed` in internal/deps_test.go"
	ruleFront       = "front-not-backend: a front never reaches internal/clamd or internal/engine, directly or through another package; a scan goes front → scan.Job → dispatcher → backend"
	ruleBackendSide = "backend-side: only the dispatcher side and the tools (backendSide in internal/deps_test.go) reach internal/clamd or internal/engine"
	ruleTools       = "tools-not-server: doctor and deploy never import serving packages, directly or through another package"
	ruleIdentity    = "one-identity-decision: a front never imports internal/identity, directly or through another package; the gateway admits each connection once, and a front is handed the decision"
	ruleBelowFronts = "below-fronts: a package the fronts share (belowFronts in internal/deps_test.go) never imports a front, directly or through another package"
	ruleTestOnly    = "test-helpers: testenv, connfuzz, testuser and httpapi/apiclient are imported by _test.go files only"
	ruleConfigData  = "config-is-data: internal/config reaches neither os/user nor os/exec nor the packages that resolve names on the host or serve (hostSide in internal/deps_test.go): users and groups stay names, resolved by internal/startup's checks, and the gateway builds its policies from the configuration"
)

const module = "clamgate"

// listed is one package as `go list -json` reports it.
type listed struct {
	ImportPath   string
	Standard     bool
	Module       *struct{ Path string }
	Imports      []string
	TestImports  []string
	XTestImports []string
	Deps         []string
	Error        *struct{ Err string }
}

// graph is the module's packages and where every package they use comes from.
type graph struct {
	own    map[string]*listed // this module's packages, by short name
	module map[string]string  // import path -> module path; "" = standard library
	broken map[[2]string]bool // (from, to) already reported by a rule
}

func loadGraph(t *testing.T) *graph {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-deps", "-test", "-json", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	g := &graph{own: map[string]*listed{}, module: map[string]string{}, broken: map[[2]string]bool{}}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listed
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		// Test variants ("p [p.test]") and test mains repeat what the
		// plain entry says in TestImports and XTestImports.
		if strings.Contains(p.ImportPath, " [") || strings.HasSuffix(p.ImportPath, ".test") {
			continue
		}
		if p.Error != nil {
			t.Errorf("go list %s: %s", p.ImportPath, p.Error.Err)
		}
		switch {
		case p.Standard:
			g.module[p.ImportPath] = ""
		case p.Module != nil:
			g.module[p.ImportPath] = p.Module.Path
		}
		if p.Module != nil && p.Module.Path == module && p.ImportPath != module+"/internal" { // this test
			g.own[short(p.ImportPath)] = &p
		}
	}
	return g
}

// full is the path in the module of a package the table names.
func full(name string) string {
	if strings.Contains(name, "/") || name == "…" {
		return name
	}
	return "internal/" + name
}

// short names a package of this module as the table does.
func short(path string) string {
	rest := strings.TrimPrefix(path, module+"/")
	if name, ok := strings.CutPrefix(rest, "internal/"); ok && !strings.Contains(name, "/") {
		return name
	}
	return rest
}

func isModule(name string) bool {
	first, _, _ := strings.Cut(name, "/")
	return strings.Contains(first, ".")
}

// row is one line of the table.
type row struct {
	imports, tests map[string]bool
	order          int
}

func parseTable(t *testing.T) map[string]row {
	t.Helper()
	rows := map[string]row{}
	lines := strings.Split(strings.TrimSpace(allowed), "\n")
	for i, line := range lines[1:] {
		cells := strings.Split(line, "|")
		if len(cells) != 4 {
			t.Fatalf("allowed, line %d: want 4 cells separated by |, got %d: %q", i+2, len(cells), line)
		}
		name := short(module + "/" + strings.TrimSpace(cells[0]))
		if _, dup := rows[name]; dup {
			t.Fatalf("allowed: two rows for %s", name)
		}
		r := row{imports: set(cells[1] + " " + cells[2]), tests: set(cells[3]), order: i}
		for n := range r.imports {
			if !isModule(n) && strings.HasPrefix(n, "internal/") {
				t.Fatalf("allowed, row %s: write %q as %q", name, n, short(module+"/"+n))
			}
		}
		rows[name] = r
	}
	return rows
}

func set(cell string) map[string]bool {
	s := map[string]bool{}
	for _, f := range strings.Fields(cell) {
		if f != "-" {
			s[f] = true
		}
	}
	return s
}

func TestImportGraph(t *testing.T) {
	g := loadGraph(t)
	rows := parseTable(t)
	g.checkRules(t)
	for _, name := range slices.Sorted(maps.Keys(g.own)) {
		r, ok := rows[name]
		if !ok {
			t.Errorf("%s has no row\n\trule %s\n\tfix: add a row for %s to the table with what it imports", full(name), ruleTable, full(name))
			continue
		}
		g.checkRow(t, name, r)
	}
	for name := range rows {
		if g.own[name] == nil {
			t.Errorf("row %s names no package of the module\n\trule %s\n\tfix: remove the row, or correct its name", full(name), ruleTable)
		}
	}
	if testing.Verbose() {
		t.Log("\n" + g.render(rows))
	}
}

// checkRow reports every import of name that its row does not allow.
func (g *graph) checkRow(t *testing.T, name string, r row) {
	t.Helper()
	p := g.own[name]
	check := func(imports []string, test bool) {
		for _, imp := range imports {
			key, kind := g.key(imp)
			if key == "" || key == name || r.imports[key] || (test && r.tests[key]) || g.broken[[2]string{name, key}] {
				continue
			}
			column, where := "imports (internal)", " imports"
			if kind == "module" {
				column = "third-party modules"
			}
			if test {
				column, where = "tests also import", "'s tests import"
			}
			t.Errorf("%s%s %s (%s %s), which its row does not allow\n\trule %s\n\tfix: if this import is meant, add %s to the %q column of the row for %s",
				full(name), where, imp, kind, key, ruleTable, key, column, full(name))
		}
	}
	check(p.Imports, false)
	check(append(slices.Clone(p.TestImports), p.XTestImports...), true)
}

// key is what the table calls the package at path: "" for the standard
// library, the short name for this module's packages, else the module.
func (g *graph) key(path string) (key, kind string) {
	mod, known := g.module[path]
	switch {
	case known && mod == "":
		return "", ""
	case mod == module || strings.HasPrefix(path, module+"/"):
		return short(path), "package"
	case known:
		return mod, "module"
	}
	return path, "unknown package" // go list could not load it; it reported why
}

func (g *graph) checkRules(t *testing.T) {
	t.Helper()
	for _, f := range fronts {
		if g.own[f] == nil {
			t.Errorf("front %s is not a package of the module\n\trule %s\n\tfix: correct fronts in internal/deps_test.go", f, ruleFront)
		}
		if slices.Contains(backendSide, f) {
			t.Errorf("front %s is listed in backendSide\n\trule %s", f, ruleFront)
		}
		g.forbid(t, f, backend, ruleFront, true)
		g.forbid(t, f, identity, ruleIdentity, true)
	}
	for _, b := range belowFronts {
		if g.own[b] == nil {
			t.Errorf("%s is not a package of the module\n\trule %s\n\tfix: correct belowFronts in internal/deps_test.go", b, ruleBelowFronts)
		}
		g.forbid(t, b, fronts, ruleBelowFronts, true)
	}
	for _, name := range slices.Sorted(maps.Keys(g.own)) {
		if !inList(backendSide, name) && !slices.Contains(fronts, name) {
			g.forbid(t, name, backend, ruleBackendSide, true)
		}
		g.forbid(t, name, testHelpers, ruleTestOnly, false)
	}
	for _, tool := range tools {
		g.forbid(t, tool, server, ruleTools, true)
	}
	g.forbid(t, "config", hostSide, ruleConfigData, true)
	if p := g.own["config"]; p != nil {
		for _, std := range hostLookups {
			if slices.Contains(p.Deps, std) {
				t.Errorf("internal/config reaches %s\n\trule %s\n\tfix: take the import out; look the host up in internal/startup", std, ruleConfigData)
			}
		}
	}
}

// forbid reports each package of forbidden that from imports (or, when
// deep, reaches through its non-test dependencies), with the way there.
func (g *graph) forbid(t *testing.T, from string, forbidden []string, rule string, deep bool) {
	t.Helper()
	p := g.own[from]
	if p == nil {
		return
	}
	reach := p.Imports
	if deep {
		reach = p.Deps
	}
	for _, dep := range reach {
		if dep == p.ImportPath || !strings.HasPrefix(dep, module+"/") || !slices.Contains(forbidden, short(dep)) {
			continue
		}
		chain := g.path(from, short(dep))
		verb := "imports"
		if len(chain) > 2 {
			verb = "reaches"
		}
		g.broken[[2]string{from, chain[1]}] = true
		for i := range chain {
			chain[i] = full(chain[i])
		}
		t.Errorf("%s %s %s: %s\n\trule %s\n\tfix: take the import out; the rules are fixed in internal/deps_test.go, not relaxed to fit",
			full(from), verb, full(short(dep)), strings.Join(chain, " → "), rule)
	}
}

// path is a shortest chain of non-test imports from one package to another.
func (g *graph) path(from, to string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur == to {
			var out []string
			for n := cur; n != ""; n = prev[n] {
				out = append([]string{n}, out...)
			}
			return out
		}
		if p := g.own[cur]; p != nil {
			for _, imp := range p.Imports {
				if n := short(imp); strings.HasPrefix(imp, module+"/") && !hasKey(prev, n) {
					prev[n] = cur
					queue = append(queue, n)
				}
			}
		}
	}
	return []string{from, "…", to}
}

// inList matches name against a list whose "dir/..." entries cover a tree.
func inList(list []string, name string) bool {
	for _, e := range list {
		if e == name || (strings.HasSuffix(e, "/...") && strings.HasPrefix(name, strings.TrimSuffix(e, "..."))) {
			return true
		}
	}
	return false
}

// render prints, per package in table order, its floor (1 + the highest
// floor it imports), what it imports of the module and which modules.
func (g *graph) render(rows map[string]row) string {
	names := slices.SortedFunc(maps.Keys(g.own), func(a, b string) int {
		return cmp.Or(cmp.Compare(g.floor(b, map[string]int{}), g.floor(a, map[string]int{})), cmp.Compare(rows[a].order, rows[b].order), strings.Compare(a, b))
	})
	var b strings.Builder
	fmt.Fprintf(&b, "%-5s  %-20s  %s\n", "floor", "package", "→ imports (of the module; third-party modules; [tests also])")
	for _, name := range names {
		p := g.own[name]
		own, mods := g.split(p.Imports)
		town, tmods := g.split(append(slices.Clone(p.TestImports), p.XTestImports...))
		extra := slices.DeleteFunc(append(town, tmods...), func(s string) bool {
			return s == name || slices.Contains(own, s) || slices.Contains(mods, s)
		})
		line := cmp.Or(strings.Join(own, " "), "-")
		if len(mods) > 0 {
			line += "; " + strings.Join(mods, " ")
		}
		if len(extra) > 0 {
			line += " [" + strings.Join(extra, " ") + "]"
		}
		if unused := unusedIn(rows[name], append(append(own, mods...), extra...)); len(unused) > 0 {
			line += " (allowed, unused: " + strings.Join(unused, " ") + ")"
		}
		fmt.Fprintf(&b, "%-5d  %-20s  → %s\n", g.floor(name, map[string]int{}), name, line)
	}
	return b.String()
}

// unusedIn lists what a row allows that the package does not import.
func unusedIn(r row, used []string) []string {
	var out []string
	for _, m := range []map[string]bool{r.imports, r.tests} {
		for k := range m {
			if !slices.Contains(used, k) {
				out = append(out, k)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// split sorts imports into this module's packages and third-party modules.
func (g *graph) split(imports []string) (own, mods []string) {
	for _, imp := range imports {
		switch key, kind := g.key(imp); kind {
		case "package":
			own = append(own, key)
		case "module", "unknown package":
			mods = append(mods, key)
		}
	}
	slices.Sort(own)
	slices.Sort(mods)
	return slices.Compact(own), slices.Compact(mods)
}

func (g *graph) floor(name string, memo map[string]int) int {
	if f, ok := memo[name]; ok {
		return f
	}
	memo[name] = 0 // the compiler forbids cycles; this only stops a loop
	f := 0
	if p := g.own[name]; p != nil {
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, module+"/") {
				f = max(f, 1+g.floor(short(imp), memo))
			}
		}
	}
	memo[name] = f
	return f
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}
