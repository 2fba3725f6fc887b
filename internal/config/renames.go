package config

import (
	"cmp"
	"slices"
	"strings"
)

// Rename is a key, value or flag that changed name. The old spelling is
// still accepted for one release: the parser (or the command) warns,
// naming the new one, and `clamgate config check` prints the warning.
type Rename struct {
	Old, New, Why string
}

// Renamed lists every rename, for the warnings and for the man pages.
var Renamed = []Rename{
	{Old: "policy.NAME.max_stream", New: "policy.NAME.max_object", Why: "one key for the largest object, per policy, whatever the protocol"},
	{Old: "icap.max_object", New: "policy.NAME.max_object", Why: "the policy of the ICAP listener sets it; the [icap] key still caps it"},
	{Old: "milter.max_size", New: "policy.NAME.max_object", Why: "the policy of the milter listener sets it; the [milter] key still caps it"},
	{Old: "engine.stream_max_length", New: "policy.NAME.max_object", Why: "the managed clamd's StreamMaxLength is the largest max_object of the policies"},
	{Old: "engine.max_threads", New: "backend.max_jobs", Why: "the managed clamd's MaxThreads is the gateway's max_jobs"},
	{Old: `milter.on_infected, on_failure, over_limit = "accept"`, New: `"pass"`, Why: "pass-through is pass in every front"},
	{Old: "serve --max-stream", New: "serve --max-object", Why: "the policy key's name"},
	{Old: "scan --gateway", New: "scan --address", Why: "one flag for the clamd-protocol server a tool talks to"},
	{Old: "db --clamd", New: "db --address", Why: "one flag for the clamd-protocol server a tool talks to"},
}

// renamedTo is the rename whose old name starts with old.
func renamedTo(old string) Rename {
	i := slices.IndexFunc(Renamed, func(r Rename) bool { return strings.HasPrefix(r.Old, old) })
	if i < 0 {
		return Rename{Old: old}
	}
	return Renamed[i]
}

// Warning is what a renamed key of the file gets: its place, and the
// new name.
func (v *validator) renamed(key, old, newName string) {
	r := renamedTo(old)
	v.warns = append(v.warns, &Error{File: v.file, Line: lineOf(v.lines, key), Key: key,
		Msg: "renamed " + newName + " (" + r.Why + "); the old name is accepted until the next release"})
}

// passValue maps the milter's old "accept" to "pass".
func (v *validator) passValue(key string, val *string) {
	if *val == "accept" {
		v.renamed(key, "milter.on_", `"pass"`)
		*val = "pass"
	}
}

// limitKey is the key a policy's largest object is set by, as the file
// spells it.
func limitKey(policyKey string, ps policySection) string {
	if ps.MaxObject == 0 && ps.MaxStream != 0 {
		return policyKey + ".max_stream"
	}
	return policyKey + ".max_object"
}

// largestObject is what a managed clamd must accept: the largest object
// any policy allows, and never less than clamd's default.
func largestObject(policies map[string]policySection) int64 {
	n := int64(DefaultStreamMax)
	for _, ps := range policies {
		n = max(n, int64(cmp.Or(ps.MaxObject, ps.MaxStream)))
	}
	return n
}
