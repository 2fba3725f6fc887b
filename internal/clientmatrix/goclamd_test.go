package clientmatrix_test

import (
	"bytes"
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	goclamd "github.com/dutchcoders/go-clamd"
)

// goClamdClient calls github.com/dutchcoders/go-clamd in this process.
func goClamdClient() client {
	return client{
		name: "go-clamd", source: "Go github.com/dutchcoders/go-clamd " + moduleVersion("github.com/dutchcoders/go-clamd"),
		prepare: func(*testing.T) {},
		drive:   driveGoClamd,
	}
}

// moduleVersion is the version of a module that go.mod requires.
func moduleVersion(path string) string {
	b, err := os.ReadFile("../../go.mod")
	if err != nil {
		return "?"
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		if len(f) >= 2 && f[0] == path {
			return f[1]
		}
	}
	return "?"
}

// goClamdCall is one operation: the method called and what it returned.
type goClamdCall struct {
	op, call string
	do       func() (any, []*goclamd.ScanResult, error)
}

func goClamdCalls(c *goclamd.Clamd, f map[string]string) []goClamdCall {
	stream := func(name string) func() (any, []*goclamd.ScanResult, error) {
		return func() (any, []*goclamd.ScanResult, error) {
			b, err := os.ReadFile(f[name])
			if err != nil {
				return nil, nil, err
			}
			abort := make(chan bool)
			defer close(abort)
			return collect(c.ScanStream(bytes.NewReader(b), abort))
		}
	}
	path := func(scan func(string) (chan *goclamd.ScanResult, error), name string) func() (any, []*goclamd.ScanResult, error) {
		return func() (any, []*goclamd.ScanResult, error) { return collect(scan(f[name])) }
	}
	return []goClamdCall{
		{"ping", "Ping", func() (any, []*goclamd.ScanResult, error) { return nil, nil, c.Ping() }},
		{"version", "Version", func() (any, []*goclamd.ScanResult, error) {
			v, _, err := collect(c.Version())
			return v, nil, err
		}},
		{"stats", "Stats", func() (any, []*goclamd.ScanResult, error) {
			s, err := c.Stats()
			return s, nil, err
		}},
		{"stream-clean", "ScanStream", stream("clean")},
		{"stream-eicar", "ScanStream", stream("eicar")},
		{"stream-empty", "ScanStream", stream("empty")},
		{"stream-5mib", "ScanStream", stream("big")},
		{"stream-over-limit", "ScanStream", stream("over")},
		{"file-clean", "ScanFile", path(c.ScanFile, "clean")},
		{"file-eicar", "ScanFile", path(c.ScanFile, "eicar")},
		{"dir-infected", "ContScanFile", path(c.ContScanFile, "dir")},
		{"dir-clean", "ContScanFile", path(c.ContScanFile, "cleandir")},
		{"multiscan", "MultiScanFile", path(c.MultiScanFile, "dir")},
		{"allmatch", "AllMatchScanFile", path(c.AllMatchScanFile, "dir")},
		{"rawscan", "RawScanFile", path(c.RawScanFile, "eicar")},
		{"reload", "Reload", func() (any, []*goclamd.ScanResult, error) { return nil, nil, c.Reload() }},
		{"shutdown", "Shutdown", func() (any, []*goclamd.ScanResult, error) { return nil, nil, c.Shutdown() }},
	}
}

// collect drains a result channel, sorted (MULTISCAN's order varies).
func collect(ch chan *goclamd.ScanResult, err error) (any, []*goclamd.ScanResult, error) {
	if err != nil {
		return nil, nil, err
	}
	var all []*goclamd.ScanResult
	for r := range ch {
		all = append(all, r)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Raw < all[j].Raw })
	return all, all, nil
}

// goClamdVerdict is what an application looping over the results
// concludes: FOUND is a virus, ERROR (or a line the library could not
// parse) an error, and anything else, including no result at all, clean.
func goClamdVerdict(results []*goclamd.ScanResult) string {
	verdict := "clean"
	for _, r := range results {
		switch r.Status {
		case goclamd.RES_FOUND:
			return "infected"
		case goclamd.RES_ERROR, goclamd.RES_PARSE_ERROR:
			verdict = "error"
		}
	}
	return verdict
}

func driveGoClamd(t *testing.T, s server, files map[string]string) map[string]result {
	t.Helper()
	c := goclamd.NewClamd("unix:" + s.unix)
	out := map[string]result{}
	for _, call := range goClamdCalls(c, files) {
		out[call.op] = callGoClamd(call)
	}
	return out
}

// callGoClamd makes one call, bounded: the library sets no deadlines, so
// a stalled call is abandoned (its connection closes with the server).
func callGoClamd(call goClamdCall) result {
	type outcome struct {
		value   any
		results []*goclamd.ScanResult
		err     error
	}
	done := make(chan outcome, 1)
	go func() {
		v, rs, err := call.do()
		done <- outcome{v, rs, err}
	}()
	select {
	case o := <-done:
		r := result{Call: call.call}
		if o.err != nil {
			r.Error, r.Verdict = o.err.Error(), "error"
			return r
		}
		r.Value, _ = json.Marshal(o.value)
		if _, scan := scanOps[call.op]; scan {
			r.Verdict = goClamdVerdict(o.results)
		}
		return r
	case <-time.After(opTimeout):
		return result{Call: call.call, Error: "no answer within " + opTimeout.String(), Verdict: "error"}
	}
}

// scanOps are the operations that yield a verdict.
var scanOps = map[string]struct{}{
	"stream-clean": {}, "stream-eicar": {}, "stream-empty": {}, "stream-5mib": {}, "stream-over-limit": {},
	"file-clean": {}, "file-eicar": {}, "dir-infected": {}, "dir-clean": {}, "multiscan": {}, "allmatch": {}, "rawscan": {},
}
