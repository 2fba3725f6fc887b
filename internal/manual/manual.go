// Package manual renders clamgate's man pages, clamgate(8) and
// clamgate.toml(5), from the sources the program itself uses: the commands'
// flag sets (through their -h output) and the annotated configuration
// reference the README shows. Generating them, instead of writing roff by
// hand, is what keeps the pages, --help and the README from drifting.
//
// It writes the small subset of man(7) macros that lintian's man check and
// every man(1) accept; no roff library for Go is worth a dependency for that.
package manual

import (
	"fmt"
	"strings"
)

// Page is one manual page.
type Page struct {
	Name, Section, Title, Source, Manual string
	Summary                              string // the NAME line's text after "\-"
	Sections                             []Section
}

// Section is a .SH heading and its content.
type Section struct {
	Heading string
	Paras   []string // plain paragraphs, rendered .PP
	Items   []Item   // tagged paragraphs, rendered .TP
	Subs    []Sub    // .SS subsections
	// Examples follow the paragraphs and items: each a sentence, then
	// its commands or file shown as typed (no filling, indented).
	Examples []Example
}

// Example is a sentence and the literal text it introduces.
type Example struct {
	Text, Code string
}

// Sub is a .SS subsection.
type Sub struct {
	Heading string
	Paras   []string
	Items   []Item
}

// Item is a tagged paragraph: Tag in bold, then Text, then its Options
// indented below it (a command's flags).
type Item struct {
	Tag, Text string
	Options   []Item
}

// Render writes the page in man(7) roff.
func (p Page) Render() string {
	var b strings.Builder
	fmt.Fprintf(&b, ".TH %s %s \"\" \"%s\" \"%s\"\n", strings.ToUpper(p.Name), p.Section, esc(p.Source), esc(p.Manual))
	// Ragged right: justifying lines that hold long addresses and digests
	// leaves gaps that man --warnings reports.
	b.WriteString(".ad l\n")
	fmt.Fprintf(&b, ".SH NAME\n%s \\- %s\n", esc(p.Name), esc(p.Summary))
	for _, s := range p.Sections {
		fmt.Fprintf(&b, ".SH %s\n", strings.ToUpper(s.Heading))
		body(&b, s.Paras, s.Items)
		for _, ex := range s.Examples {
			fmt.Fprintf(&b, ".PP\n%s\n.PP\n.RS 4\n.nf\n%s\n.fi\n.RE\n", text(ex.Text), literal(ex.Code))
		}
		for _, sub := range s.Subs {
			fmt.Fprintf(&b, ".SS %s\n", quoteArg(sub.Heading))
			body(&b, sub.Paras, sub.Items)
		}
	}
	return b.String()
}

func body(b *strings.Builder, paras []string, items []Item) {
	for _, p := range paras {
		fmt.Fprintf(b, ".PP\n%s\n", text(p))
	}
	for _, it := range items {
		fmt.Fprintf(b, ".TP\n.B %s\n", quoteArg(it.Tag))
		if it.Text != "" {
			fmt.Fprintf(b, "%s\n", text(it.Text))
		}
		if len(it.Options) > 0 {
			b.WriteString(".RS\n")
			body(b, nil, it.Options)
			b.WriteString(".RE\n")
		}
	}
}

// text escapes free text line by line: a backslash is roff's escape, and a
// line starting with a dot or quote would be read as a request.
func text(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		l = breakable(esc(l))
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			l = `\&` + l
		}
		if strings.TrimSpace(l) == "" {
			l = ".sp"
		}
		lines[i] = l
	}
	return strings.Join(lines, "\n")
}

// breakable lets roff break a word longer than a line (an image digest)
// after its colons and every forty characters, instead of overrunning the
// margin, which man --warnings reports.
func breakable(line string) string {
	words := strings.Split(line, " ")
	for i, w := range words {
		if len(w) <= 40 {
			continue
		}
		var b strings.Builder
		run := 0
		for _, r := range w {
			b.WriteRune(r)
			run++
			if r == ':' || run == 40 {
				b.WriteString(`\:`)
				run = 0
			}
		}
		words[i] = b.String()
	}
	return strings.Join(words, " ")
}

// literal escapes text shown as typed: roff's escape and requests, as
// text does, but no line is broken or turned into a space request.
func literal(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		l = esc(l)
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			l = `\&` + l
		}
		lines[i] = l
	}
	return strings.Join(lines, "\n")
}

func esc(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	return strings.ReplaceAll(s, "-", `\-`)
}

// quoteArg makes s one macro argument.
func quoteArg(s string) string {
	return `"` + strings.ReplaceAll(esc(s), `"`, `\(dq`) + `"`
}
