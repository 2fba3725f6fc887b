package clientmatrix_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"clamgate/internal/config"
	"clamgate/internal/testenv"
)

// streamMaxLength is clamd's StreamMaxLength and clamgate's limit here:
// above the 5 MiB stream, below the over-limit one.
const streamMaxLength = "6M"

// opTimeout bounds each call a driver makes; clamgate's read timeout is
// shorter, so that a client that never finishes its command is answered.
const (
	opTimeout   = 15 * time.Second
	readTimeout = "3s"
)

// result is what one call of a client returned: its value, or the error
// it raised, and the verdict an application draws from that (clean,
// infected, error; empty for calls that are no scans).
type result struct {
	Call    string          `json:"call"`
	Value   json.RawMessage `json:"value"`
	Error   string          `json:"error"`
	Verdict string          `json:"verdict"`
}

// plan tells a driver where its server is and which files to use.
type plan struct {
	Unix      string            `json:"unix"` // unix socket, or "" for TCP
	Host      string            `json:"host"`
	Port      int               `json:"port"`
	Files     map[string]string `json:"files"`
	OpTimeout int64             `json:"op_timeout_ms"`
}

// matrixFiles writes what every client scans: small files, a 5 MiB and an
// over-limit file with EICAR at their ends (a scan that stops early
// misses it), and two trees. Both servers see the same files.
func matrixFiles(t *testing.T) map[string]string {
	t.Helper()
	root := testenv.TempDir(t)
	rng := rand.New(rand.NewChaCha8([32]byte{'c', 'l', 'a', 'm'}))
	noise := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return string(b)
	}
	contents := map[string]string{
		"clean.txt":             "just some clean text\n",
		"eicar.com":             testenv.EICAR,
		"empty":                 "",
		"big.bin":               noise(5<<20-len(testenv.EICAR)) + testenv.EICAR,
		"over.bin":              noise(7<<20) + testenv.EICAR,
		"dir/a_clean.txt":       "clean\n",
		"dir/eicar.com":         testenv.EICAR,
		"dir/sub/b_eicar.com":   testenv.EICAR,
		"dir/sub/c_clean.txt":   "clean too\n",
		"cleandir/a.txt":        "a\n",
		"cleandir/deeper/b.txt": "b\n",
	}
	for rel, body := range contents {
		p := filepath.Join(root, rel)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(body), 0o644))
	}
	return map[string]string{
		"root": root, "clean": filepath.Join(root, "clean.txt"), "eicar": filepath.Join(root, "eicar.com"),
		"empty": filepath.Join(root, "empty"), "big": filepath.Join(root, "big.bin"),
		"over": filepath.Join(root, "over.bin"), "dir": filepath.Join(root, "dir"),
		"cleandir": filepath.Join(root, "cleandir"),
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// server is one side of the comparison: real clamd, or clamgate.
type server struct {
	name      string
	unix, tcp string
}

// startPair starts a clamd of its own for one client (the client's
// SHUTDOWN stops it) and clamgate in front of it, with a unix and a TCP
// listener serving a policy whose root holds the files.
func startPair(t *testing.T, root string) (*testenv.Clamd, server, server) {
	t.Helper()
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{StreamMaxLength: streamMaxLength})
	dir := testenv.TempDir(t)
	gw := server{name: "clamgate", unix: filepath.Join(dir, "gw.sock"), tcp: testenv.FreePort(t)}
	src := fmt.Sprintf(`
[backend]
address = "unix:%s"
timeout = "20s"
stream_max_length = %q

[server]
read_timeout = %q
shutdown_grace = "1s"

[[listener]]
address = "unix:%s"
policy = "matrix"
mode = "0666"

[[listener]]
address = "tcp:%s"
policy = "matrix"

[policy.matrix]
roots = [%q]
`, clamd.Socket, streamMaxLength, readTimeout, gw.unix, gw.tcp, root)
	cfg, err := config.Parse("matrix.toml", []byte(src))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, src)
	}
	testenv.StartGateway(t, cfg)
	return clamd, server{name: "clamd", unix: clamd.Socket, tcp: clamd.TCPAddr}, gw
}

// alive reports whether clamd still answers PING.
func alive(clamd *testenv.Clamd) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := clamd.Client("unix")
	c.Timeout = 5 * time.Second
	reply, err := c.Command(ctx, "PING")
	return err == nil && reply == "PONG"
}

// stops waits for clamd to stop answering after a SHUTDOWN: some clients
// send it and return without waiting for clamd to act.
func stops(clamd *testenv.Clamd) bool {
	for range 100 {
		if !alive(clamd) {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// column is one client's outcome: a cell per operation it offers.
type column map[string]cell

// runClient drives one client through clamgate, then through clamd (whose
// SHUTDOWN comes last), and judges each operation.
func runClient(t *testing.T, c client, files map[string]string) column {
	t.Helper()
	c.prepare(t)
	clamd, direct, gw := startPair(t, files["root"])
	viaGateway := c.drive(t, gw, files)
	if !alive(clamd) {
		t.Fatalf("clamd stopped answering after %s talked to clamgate: a refused SHUTDOWN went through", c.name)
	}
	viaClamd := c.drive(t, direct, files)
	col := column{}
	for key, g := range viaGateway {
		op, ok := operationByKey(key)
		if !ok {
			t.Fatalf("driver of %s ran unknown operation %q", c.name, key)
		}
		d, ok := viaClamd[key]
		if !ok {
			t.Fatalf("driver of %s ran %q only through clamgate", c.name, key)
		}
		col[key] = judge(t, c.name, op, d, g, direct, gw)
	}
	if _, ok := viaClamd["shutdown"]; ok && !stops(clamd) {
		t.Errorf("%s: SHUTDOWN sent straight to clamd did not stop it; the comparison of refusals means nothing", c.name)
	}
	return col
}

// cell is the verdict on one client × operation.
type cell struct {
	call   string
	status string // see the legend in table_test.go
}

const (
	statusSame          = "same"
	statusSameError     = "same-error"
	statusLimit         = "limit"
	statusRefused       = "refused"
	statusRefusedUnseen = "refused-unseen"
	statusDiffers       = "differs"
	statusCleanEICAR    = "clean-for-eicar"
)

// judge compares what a call returned from clamd (d) and from clamgate
// (g). The hard invariant comes first: a call on EICAR never yields clean.
func judge(t *testing.T, name string, op operation, d, g result, direct, gw server) cell {
	t.Helper()
	show := fmt.Sprintf("%s %s (%s)\n  clamd:    %s\n  clamgate: %s", name, op.key, g.Call, d, g)
	t.Log(show)
	status, problem := compare(op, d, g, normalize(op, d, direct), normalize(op, g, gw))
	// A listener is bound under a temporary name and renamed; the kernel
	// must not keep reporting that name to clients (in their errors).
	if tmp := filepath.Base(gw.unix) + "."; problem == "" && strings.Contains(g.Error+string(g.Value), tmp) {
		status, problem = statusDiffers, "clamgate's temporary socket name reaches the client"
	}
	if problem != "" {
		t.Errorf("%s: %s", problem, show)
	}
	return cell{call: g.Call, status: status}
}

// compare decides a cell's status, and what is wrong if anything is.
func compare(op operation, d, g result, dn, gn string) (status, problem string) {
	switch {
	case op.eicar && (d.Verdict == "clean" || g.Verdict == "clean"):
		return statusCleanEICAR, "INVARIANT BROKEN: a call on EICAR returned clean"
	case refusedOps[op.key]:
		return compareRefusal(d, g, dn, gn)
	case op.key == "stream-over-limit":
		// Even clamd's own reply is not always read: it closes while the
		// client is still writing, and the client may get EPIPE or
		// ECONNRESET first. What must hold is that it is an error.
		if d.Verdict != "error" || g.Verdict != "error" {
			return statusDiffers, "an over-limit stream must end in an error"
		}
		return statusLimit, ""
	case dn != gn:
		return statusDiffers, "clamgate and clamd differ"
	case g.Verdict == "error":
		return statusSameError, ""
	}
	return statusSame, ""
}

// compareRefusal checks an admin command: clamd executes it, clamgate
// refuses it, and the client shows the refusal if it reads the reply.
func compareRefusal(d, g result, dn, gn string) (status, problem string) {
	switch {
	case d.Verdict == "error":
		return statusDiffers, "clamd itself did not execute the command"
	case g.Verdict == "error" || strings.Contains(string(g.Value), "not allowed"):
		return statusRefused, ""
	case dn == gn:
		// The client does not read the reply (pyclamd's shutdown,
		// go-clamd's Shutdown): it cannot tell. clamd still answering
		// PING after the run shows that clamgate refused.
		return statusRefusedUnseen, ""
	}
	return statusDiffers, "clamgate must refuse it, and the client show an error"
}

func (r result) String() string {
	if r.Error != "" {
		return fmt.Sprintf("error %q (verdict %s)", r.Error, r.Verdict)
	}
	return fmt.Sprintf("%s (verdict %s)", r.Value, r.Verdict)
}

var (
	fdName      = regexp.MustCompile(`fd\[\d+\]`)
	digits      = regexp.MustCompile(`\d+(\.\d+)?`)
	statsVaries = regexp.MustCompile(`(?m)^(\t.*|DATABASE: .*)\n`)
)

// normalize hides what legitimately differs between the two runs: the
// address dialled, descriptor numbers, STATS' live figures and the
// DATABASE line clamgate adds to STATS when it knows the database
// (documented in docs/compatibility.md).
func normalize(op operation, r result, s server) string {
	value := r.Value
	if op.key == "stats" {
		value = mapStrings(value, func(s string) string {
			return digits.ReplaceAllString(statsVaries.ReplaceAllString(s, ""), "N")
		})
	}
	text := string(value) + "|" + r.Error + "|" + r.Verdict
	text = strings.ReplaceAll(text, s.unix, "$UNIX")
	text = strings.ReplaceAll(text, s.tcp, "$TCP")
	return fdName.ReplaceAllString(text, "fd[N]")
}

// mapStrings applies f to every string in a JSON value.
func mapStrings(raw json.RawMessage, f func(string) string) json.RawMessage {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return raw
	}
	var walk func(any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case string:
			return f(x)
		case []any:
			for i := range x {
				x[i] = walk(x[i])
			}
		case map[string]any:
			for k := range x {
				x[k] = walk(x[k])
			}
		}
		return v
	}
	out, _ := json.Marshal(walk(v))
	return out
}

// TestClientMatrix is the matrix: every client, every call it offers,
// against clamd and clamgate. It then checks the table it derives against
// testdata/clients.md (go test -run TestClientMatrix -update rewrites it
// and docs/compatibility.md's copy).
func TestClientMatrix(t *testing.T) {
	files := matrixFiles(t)
	clients := allClients()
	cols := make([]column, len(clients))
	t.Run("client", func(t *testing.T) {
		for i, c := range clients {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				cols[i] = runClient(t, c, files)
			})
		}
	})
	for i, c := range cols {
		if c == nil {
			t.Logf("table not checked: %s did not run", clients[i].name)
			return
		}
	}
	checkTable(t, renderTable(clients, cols))
}

// writeJSON writes v to a temporary file for a driver to read.
func writeJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err)
	p := filepath.Join(testenv.TempDir(t), "plan.json")
	must(t, os.WriteFile(p, b, 0o644))
	return p
}

// decodeResults reads a driver's output: one JSON object, operation -> result.
func decodeResults(t *testing.T, who string, out []byte) map[string]result {
	t.Helper()
	var res map[string]result
	if err := json.Unmarshal(bytes.TrimSpace(out), &res); err != nil {
		t.Fatalf("%s printed no result object: %v\n%s", who, err, out)
	}
	return res
}
