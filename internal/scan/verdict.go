package scan

import (
	"errors"
	"strings"
)

// ErrNotVerdict is a backend reply that is not one of clamd's verdicts for
// the object scanned. The job fails: relaying it, or reading it loosely,
// could let a client take garbage, a truncated line, another object's
// verdict or a lowercase "ok" as clean.
var ErrNotVerdict = errors.New("clamd sent a reply that is not a verdict")

// StreamObject is how clamd names an INSTREAM in its verdict.
const StreamObject = "stream"

// ParseVerdict is the one reading of clamd's reply to the scan of one
// object, for every front and the scan command. object is what clamd calls
// it: StreamObject for INSTREAM, fd[N] for FILDES (see FDObject). The
// reply is one line, its NUL terminator already checked and removed by
// the backend client:
//
//   - "OBJECT: OK" is Clean;
//   - "OBJECT: NAME FOUND" is Infected by NAME;
//   - any line ending in " ERROR" is clamd's own failure, Failed (clamd's
//     size-limit reply names no object);
//   - anything else is ErrNotVerdict, never a verdict.
func ParseVerdict(object, reply string) (Result, error) {
	res := Result{Reply: reply}
	if object == "" || strings.ContainsAny(reply, "\n\x00") {
		return res, ErrNotVerdict
	}
	if strings.HasSuffix(reply, " ERROR") {
		return res, nil
	}
	rest, ok := strings.CutPrefix(reply, object+": ")
	if !ok {
		return res, ErrNotVerdict
	}
	if rest == "OK" {
		res.Verdict = Clean
		return res, nil
	}
	name, ok := strings.CutSuffix(rest, " FOUND")
	if !ok || name == "" || strings.TrimSpace(name) != name {
		return res, ErrNotVerdict
	}
	res.Verdict, res.Threat = Infected, name
	return res, nil
}

// FDObject is how clamd named a descriptor in its reply to FILDES, fd[N];
// "" when the reply names none, which ParseVerdict refuses.
func FDObject(reply string) string {
	name, _, _ := strings.Cut(reply, ": ")
	inner, open := strings.CutPrefix(name, "fd[")
	digits, closed := strings.CutSuffix(inner, "]")
	if !open || !closed || digits == "" || strings.Trim(digits, "0123456789") != "" {
		return ""
	}
	return name
}
