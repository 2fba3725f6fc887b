package config

import (
	"fmt"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// keyLines maps every key of a TOML document to the line it is set on, so
// that validation errors found after decoding (a policy that does not
// exist, a group that is unknown) can still point at the line to fix.
// Keys are written as in error messages: listener[1].mode, policy.amavis.roots.
func keyLines(src []byte) map[string]int {
	lines := map[string]int{}
	arrays := map[string]int{} // array table -> current index
	var table string
	p := unstable.Parser{}
	p.Reset(src)
	for p.NextExpression() {
		e := p.Expression()
		parts, line := keyOf(&p, e)
		switch e.Kind {
		case unstable.Table:
			table = strings.Join(parts, ".")
			lines[table] = line
		case unstable.ArrayTable:
			name := strings.Join(parts, ".")
			idx := arrays[name]
			arrays[name] = idx + 1
			table = fmt.Sprintf("%s[%d]", name, idx)
			lines[table] = line
		case unstable.KeyValue:
			key := strings.Join(parts, ".")
			if table != "" {
				key = table + "." + key
			}
			lines[key] = line
		}
	}
	return lines
}

func keyOf(p *unstable.Parser, e *unstable.Node) ([]string, int) {
	var parts []string
	line := 0
	it := e.Key()
	for it.Next() {
		n := it.Node()
		if line == 0 {
			line = p.Shape(n.Raw).Start.Line
		}
		parts = append(parts, string(n.Data))
	}
	return parts, line
}

// lineOf finds the line of key, or of the nearest enclosing table.
func lineOf(lines map[string]int, key string) int {
	for key != "" {
		if l, ok := lines[key]; ok {
			return l
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}
