package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteJSON prints the report in the stable schema monitoring reads.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// colours have the same length, so that tabwriter, which counts bytes,
// still aligns coloured cells.
var colours = map[Status]string{Pass: "\x1b[32m", Warn: "\x1b[33m", Fail: "\x1b[31m"}

const reset = "\x1b[0m"

// WriteTable prints one aligned row per check, then how to fix what did
// not pass, with the source of each rule.
func WriteTable(w io.Writer, r *Report, colour bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tID\tCHECK\tEXPECTED\tMEASURED")
	for _, c := range r.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", statusCell(c.Status, colour), c.ID, c.Title, c.Expected, c.Measured)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	writeFixes(w, r)
	if r.Offline {
		fmt.Fprintln(w, "\noffline (--root): process, socket and listener checks not run")
	}
	_, err := fmt.Fprintf(w, "\n%d pass, %d warn, %d fail\n", r.Summary.Pass, r.Summary.Warn, r.Summary.Fail)
	return err
}

func statusCell(s Status, colour bool) string {
	text := strings.ToUpper(string(s))
	if s == Pass {
		text = "ok"
	}
	if !colour {
		return text
	}
	return colours[s] + text + reset
}

func writeFixes(w io.Writer, r *Report) {
	first := true
	for _, c := range r.Checks {
		if c.Status == Pass {
			continue
		}
		if first {
			fmt.Fprintln(w, "\nto fix:")
			first = false
		}
		fmt.Fprintf(w, "  %s: %s\n    why: %s\n", c.ID, c.Fix, c.Source)
	}
}
