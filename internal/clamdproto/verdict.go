package clamdproto

import (
	"errors"
	"strings"
)

// errNotVerdict replaces a backend reply that is not one of clamd's
// verdicts: relaying it could let a client read garbage, a truncated line
// or a lowercase "ok" as clean.
var errNotVerdict = errors.New("clamd sent a reply that is not a verdict")

// errEarlyVerdict replaces a verdict that came before the whole stream was
// read: it cannot be about all of the client's data.
var errEarlyVerdict = errors.New("clamd answered before the end of the stream")

// isVerdict reports whether reply is one line clamd sends for a scan of
// object ("stream", "fd[N]"): "OBJECT: OK", "OBJECT: NAME FOUND", or any
// line ending in " ERROR", which the client reads as a failure anyway
// (clamd's own size-limit reply names no object).
func isVerdict(object, reply string) bool {
	if strings.ContainsAny(reply, "\n\x00") {
		return false
	}
	if strings.HasSuffix(reply, " ERROR") {
		return true
	}
	rest, ok := strings.CutPrefix(reply, object+": ")
	if !ok || object == "" {
		return false
	}
	if rest == "OK" {
		return true
	}
	name, ok := strings.CutSuffix(rest, " FOUND")
	return ok && name != "" && strings.TrimSpace(name) == name
}

// fdObject is how clamd named the descriptor in its reply, fd[N]; "" when
// the reply names none.
func fdObject(reply string) string {
	name, _, _ := strings.Cut(reply, ": ")
	inner, open := strings.CutPrefix(name, "fd[")
	digits, closed := strings.CutSuffix(inner, "]")
	if !open || !closed || digits == "" || strings.Trim(digits, "0123456789") != "" {
		return ""
	}
	return name
}
