package docs

import (
	"bytes"
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"clamgate/internal/cli"
)

const root = "../.."

// maxReadme is the length a newcomer reads top to bottom; the rest
// belongs in docs/, one topic per file.
const maxReadme = 300

func TestReadmeLength(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(b, []byte("\n")); n > maxReadme {
		t.Errorf("README.md has %d lines, at most %d: move the details to a file under docs/", n, maxReadme)
	}
}

// unreachable matches words that point at something the reader of an
// installed package cannot open.
var unreachable = regexp.MustCompile(`(?i)\barticle'?s?\b|\bissues?\s*#?\d+|§\s*\d|\bgh-\d+`)

// TestSelfContained: what an administrator reads stands on its own.
func TestSelfContained(t *testing.T) {
	texts := map[string]string{}
	for _, pattern := range []string{"README.md", "SECURITY.md", "docs/*.md", "packaging/debian/clamgate.toml", "internal/doctor/testdata/*.golden"} {
		files, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no file (%v)", pattern, err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			texts[rel(f)] = string(b)
		}
	}
	for _, section := range []string{"8", "5"} {
		var out bytes.Buffer
		if code := cli.Main(context.Background(), []string{"manual", section}, &out, &out); code != 0 {
			t.Fatalf("clamgate manual %s: exit %d\n%s", section, code, out.String())
		}
		texts["clamgate manual "+section] = out.String()
	}
	for name, s := range doctorStrings(t) {
		texts[name] = s
	}
	anchors := map[string]map[string]bool{}
	for name, text := range texts {
		for i, line := range strings.Split(text, "\n") {
			if m := unreachable.FindString(line); m != "" {
				t.Errorf("%s:%d: %q points at something the reader cannot open; say what it means instead:\n\t%s", name, i+1, m, strings.TrimSpace(line))
			}
			// A doc named in plain text (doctor's why:, the conffile's
			// comments, the man pages) must exist, as a link must.
			for _, m := range docRef.FindAllString(line, -1) {
				checkLink(t, filepath.Join(root, "README.md"), link{target: m, line: i + 1}, anchors)
			}
		}
	}
}

// docRef is a file under docs/ named in plain text, with its anchor.
var docRef = regexp.MustCompile(`\bdocs/[a-z0-9-]+\.md(#[a-z0-9-]+)?`)

// doctorStrings returns every string literal of doctor's code, which is
// where its titles, fixes and reasons are written.
func doctorStrings(t *testing.T) map[string]string {
	t.Helper()
	dir := filepath.Join(root, "internal/doctor")
	pkgs, err := parser.ParseDir(token.NewFileSet(), dir, func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range pkgs {
		for name, f := range p.Files {
			var b strings.Builder
			ast.Inspect(f, func(n ast.Node) bool {
				if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if s, err := strconv.Unquote(lit.Value); err == nil {
						b.WriteString(s + "\n")
					}
				}
				return true
			})
			out[rel(name)+" (strings)"] = b.String()
		}
	}
	return out
}

// TestMarkdownLinks: every relative link of every Markdown file of the
// tree names a file that exists and, with #anchor, a heading in it.
func TestMarkdownLinks(t *testing.T) {
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && p != root || d.Name() == "node_modules" || d.Name() == "testdata" || d.Name() == "dist") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".md") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("found %d Markdown files, expected README, SECURITY and docs/", len(files))
	}
	anchors := map[string]map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range links(string(b)) {
			checkLink(t, f, l, anchors)
		}
	}
}

func checkLink(t *testing.T, from string, l link, anchors map[string]map[string]bool) {
	t.Helper()
	target, anchor, _ := strings.Cut(l.target, "#")
	if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
		return
	}
	path := from
	if target != "" {
		path = filepath.Join(filepath.Dir(from), target)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Errorf("%s:%d: link %q: %s does not exist", rel(from), l.line, l.target, rel(path))
		return
	}
	if shipped(rel(from)) && !shipped(rel(path)) {
		t.Errorf("%s:%d: link %q: %s is not installed in /usr/share/doc/clamgate with the page that links to it", rel(from), l.line, l.target, rel(path))
	}
	if anchor == "" {
		return
	}
	if fi.IsDir() || !strings.HasSuffix(path, ".md") {
		t.Errorf("%s:%d: link %q: an anchor into %s, which is not a Markdown file", rel(from), l.line, l.target, rel(path))
		return
	}
	if anchors[path] == nil {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		anchors[path] = headingAnchors(string(b))
	}
	if !anchors[path][anchor] {
		t.Errorf("%s:%d: link %q: %s has no heading with anchor #%s", rel(from), l.line, l.target, rel(path), anchor)
	}
}

// shipped tells the files scripts/package.sh installs in
// /usr/share/doc/clamgate, where their links must still lead somewhere.
func shipped(path string) bool {
	switch path {
	case "README.md", "SECURITY.md", "LICENSE":
		return true
	}
	dir, name := filepath.Split(path)
	return dir == "docs/" && strings.HasSuffix(name, ".md")
}

type link struct {
	target string
	line   int
}

var (
	inlineLink = regexp.MustCompile(`\]\(([^()\s]+)\)`)
	codeSpan   = regexp.MustCompile("`[^`]*`")
)

// links returns the targets of a document's inline links, outside code
// blocks and code spans.
func links(doc string) []link {
	var out []link
	fenced := false
	for i, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced || strings.HasPrefix(line, "    ") && !strings.HasPrefix(strings.TrimSpace(line), "-") && !strings.HasPrefix(strings.TrimSpace(line), "|") {
			continue
		}
		for _, m := range inlineLink.FindAllStringSubmatch(codeSpan.ReplaceAllString(line, "``"), -1) {
			out = append(out, link{target: m[1], line: i + 1})
		}
	}
	return out
}

// headingAnchors computes the anchors GitHub gives a document's headings:
// lower case, punctuation dropped, spaces as hyphens, repeats numbered.
func headingAnchors(doc string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	fenced := false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		text := strings.TrimSpace(strings.TrimLeft(line, "#"))
		slug := slugify(text)
		if n := seen[slug]; n > 0 {
			out[slug+"-"+strconv.Itoa(n)] = true
		} else {
			out[slug] = true
		}
		seen[slug]++
	}
	return out
}

func slugify(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func rel(p string) string {
	if r, err := filepath.Rel(root, p); err == nil {
		return r
	}
	return p
}

// TestCopyrightCoversModules: every Go module compiled into the binary
// has its stanza in the package's copyright file, and no stanza names a
// module the binary no longer links.
func TestCopyrightCoversModules(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{if not .Module.Main}}{{.Module.Path}}{{end}}{{end}}", "clamgate/cmd/clamgate").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	linked := map[string]bool{"go": true} // the runtime and standard library
	for _, m := range strings.Fields(string(out)) {
		linked[m] = true
	}
	b, err := os.ReadFile(filepath.Join(root, "packaging/debian/copyright"))
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^Files: (\S+)/\*$`).FindAllStringSubmatch(string(b), -1) {
		named[m[1]] = true
	}
	for m := range linked {
		if !named[m] {
			t.Errorf("packaging/debian/copyright has no stanza for %s (Files: %s/*), which the binary links: add its copyright and licence", m, m)
		}
	}
	for m := range named {
		if !linked[m] {
			t.Errorf("packaging/debian/copyright names %s, which the binary no longer links", m)
		}
	}
}
