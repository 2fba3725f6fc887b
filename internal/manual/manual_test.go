package manual

import (
	"strings"
	"testing"
)

func TestReference(t *testing.T) {
	src := `[server]                # the gateway itself
read_timeout = "2m"     # longest wait
                        # for a command
commands = ["PING",
            "SCAN"]     # the default
`
	subs := Reference(src)
	if len(subs) != 1 || subs[0].Heading != "[server]" || subs[0].Paras[0] != "the gateway itself" {
		t.Fatalf("sections: %+v", subs)
	}
	want := []Item{
		{Tag: `read_timeout = "2m"`, Text: "longest wait for a command"},
		{Tag: `commands = ["PING", "SCAN"]`, Text: "the default"},
	}
	for i, it := range subs[0].Items {
		if it.Tag != want[i].Tag || it.Text != want[i].Text {
			t.Errorf("item %d = %+v, want %+v", i, it, want[i])
		}
	}
}

func TestRenderEscapes(t *testing.T) {
	p := Page{Name: "x", Section: "8", Summary: "a-b", Sections: []Section{{
		Heading: "Description",
		Paras:   []string{".starts with a dot\n'and a quote\nback\\slash"},
		Items:   []Item{{Tag: `say "hi"`, Options: []Item{{Tag: "--flag", Text: "text"}}}},
	}}}
	out := p.Render()
	for _, want := range []string{"x \\- a\\-b\n", "\\&.starts", "\\&'and", "back\\eslash", `.B "say \(dqhi\(dq"`, ".RS\n.TP\n.B \"\\-\\-flag\"\ntext\n.RE\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("rendered page lacks %q:\n%s", want, out)
		}
	}
}

func TestRenderExamples(t *testing.T) {
	p := Page{Name: "x", Section: "8", Summary: "y", Sections: []Section{{
		Heading:  "Examples",
		Examples: []Example{{Text: "Check, then reload:", Code: "x check && systemctl reload x\n.dot-led line\nback\\slash"}},
	}}}
	want := ".SH EXAMPLES\n.PP\nCheck, then reload:\n.PP\n.RS 4\n.nf\nx check && systemctl reload x\n\\&.dot\\-led line\nback\\eslash\n.fi\n.RE\n"
	if out := p.Render(); !strings.Contains(out, want) {
		t.Errorf("rendered page lacks\n%s\nin\n%s", want, out)
	}
}
