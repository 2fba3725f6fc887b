package manual

import "strings"

// Reference turns the annotated TOML reference (a table header, then one
// `key = default   # what it does` line per key, comments continued on
// indented lines) into one subsection per table, one item per key.
func Reference(src string) []Sub {
	var subs []Sub
	var cur *Item
	for _, line := range strings.Split(src, "\n") {
		trimmed := strings.TrimSpace(line)
		code, comment := splitComment(trimmed)
		switch {
		case trimmed == "":
			cur = nil
		case strings.HasPrefix(trimmed, "["):
			subs = append(subs, Sub{Heading: code})
			if comment != "" {
				subs[len(subs)-1].Paras = []string{comment}
			}
			cur = nil
		case code == "" && cur != nil: // a comment continued
			cur.Text = join(cur.Text, comment)
		case strings.Contains(code, "=") && len(subs) > 0:
			s := &subs[len(subs)-1]
			s.Items = append(s.Items, Item{Tag: code, Text: comment})
			cur = &s.Items[len(s.Items)-1]
		case cur != nil: // a value continued (a long list)
			cur.Tag = join(cur.Tag, code)
			cur.Text = join(cur.Text, comment)
		}
	}
	return subs
}

// splitComment cuts a TOML line at its comment, outside quoted strings.
func splitComment(line string) (code, comment string) {
	inString := byte(0)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inString != 0 && c == inString:
			inString = 0
		case inString == 0 && (c == '"' || c == '\''):
			inString = c
		case inString == 0 && c == '#':
			return strings.TrimSpace(line[:i]), strings.TrimSpace(line[i+1:])
		}
	}
	return line, ""
}

func join(a, b string) string {
	if a == "" || b == "" {
		return a + b
	}
	return a + " " + b
}
