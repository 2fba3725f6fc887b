package icap

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"clamgate/internal/config"
	"clamgate/internal/connfuzz"
	"clamgate/internal/policy"
	"clamgate/internal/scan"
)

var update = flag.Bool("update", false, "rewrite golden files")

func reader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

const respHead = "RESPMOD icap://127.0.0.1:1344/avscan ICAP/1.0\r\nHost: x\r\n"

func TestReadRequest(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		code     int // 0 = accepted
	}{
		{"options", "OPTIONS icap://h/avscan ICAP/1.0\r\n\r\n", 0},
		{"respmod", respHead + "Encapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", 0},
		{"reqmod null body", "REQMOD icap://h/avscan ICAP/1.0\r\nEncapsulated: req-hdr=0, null-body=18\r\n\r\nGET / HTTP/1.1\r\n\r\n", 0},
		{"http version", "OPTIONS icap://h/avscan HTTP/1.1\r\n\r\n", 505},
		{"not icap uri", "OPTIONS http://h/avscan ICAP/1.0\r\n\r\n", 400},
		{"garbage line", "hello\r\n\r\n", 400},
		{"missing encapsulated", respHead + "\r\n", 400},
		{"encapsulated garbage", respHead + "Encapsulated: res-hdr=x\r\n\r\n", 400},
		{"encapsulated unknown section", respHead + "Encapsulated: foo=0, res-body=1\r\n\r\n", 400},
		{"encapsulated out of order", respHead + "Encapsulated: res-hdr=10, req-hdr=0, res-body=20\r\n\r\n", 400},
		{"encapsulated no body", respHead + "Encapsulated: res-hdr=0\r\n\r\n", 400},
		{"encapsulated huge", respHead + "Encapsulated: res-hdr=0, res-body=99999999\r\n\r\n", 400},
		{"respmod without res-hdr", respHead + "Encapsulated: req-hdr=0, res-body=18\r\n\r\nGET / HTTP/1.1\r\n\r\n", 400},
		{"bad preview", respHead + "Preview: -1\r\nEncapsulated: res-hdr=0, res-body=0\r\n\r\n", 400},
		{"bad header line", respHead + "no colon here\r\n\r\n", 400},
		{"huge header", respHead + "X-Big: " + strings.Repeat("a", maxLine) + "\r\n\r\n", 400},
		{"too many headers", respHead + strings.Repeat("X-A: b\r\n", maxICAPHeader/8) + "\r\n", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readRequest(reader(tc.in))
			var se *statusError
			switch {
			case tc.code == 0 && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.code != 0 && (!errors.As(err, &se) || se.code != tc.code):
				t.Fatalf("got %v, want ICAP %d", err, tc.code)
			}
		})
	}
}

func TestReadRequestTruncated(t *testing.T) {
	full := respHead + "Encapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"
	for i := 1; i < len(full); i++ {
		if _, err := readRequest(reader(full[:i])); err == nil {
			t.Fatalf("truncated at %d accepted", i)
		}
	}
	if _, err := readRequest(reader("")); err != io.EOF {
		t.Fatalf("empty: %v, want io.EOF", err)
	}
}

func TestRequestFields(t *testing.T) {
	in := "RESPMOD icap://h/avscan ICAP/1.0\r\nAllow: trailers, 204\r\nPreview: 10\r\nEncapsulated: req-hdr=0, res-hdr=44, res-body=85\r\n\r\n" +
		"GET /a?b=<c> HTTP/1.1\r\nHost: example.org\r\n\r\n" +
		"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
	req, err := readRequest(reader(in))
	if err != nil {
		t.Fatal(err)
	}
	if !req.Allow204 || req.Preview != 10 || !req.HasBody || req.ContentLength() != 1234 || req.URL() != "http://example.org/a?b=<c>" {
		t.Fatalf("%+v url=%q cl=%d", req, req.URL(), req.ContentLength())
	}
}

func TestChunkReader(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		ieof           bool
		bad            bool
	}{
		{"simple", "3\r\nabc\r\n0\r\n\r\n", "abc", false, false},
		{"several", "3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n", "abcde", false, false},
		{"ieof", "3\r\nabc\r\n0; ieof\r\n\r\n", "abc", true, false},
		{"hex", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789", false, false},
		{"trailer", "1\r\na\r\n0\r\nX-T: 1\r\n\r\n", "a", false, false},
		{"bare LF", "1\nz\n0\n\n", "z", false, false},
		{"bad size", "zz\r\nabc\r\n0\r\n\r\n", "", false, true},
		{"negative", "-1\r\n", "", false, true},
		{"size overflow", "fffffffffffffffff\r\n", "", false, true},
		{"missing CRLF after data", "3\r\nabcX\r\n0\r\n\r\n", "", false, true},
		{"truncated data", "10\r\nabc", "", false, true},
		{"truncated end", "3\r\nabc\r\n", "", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cr := newChunkReader(reader(tc.in))
			got, err := io.ReadAll(cr)
			if tc.bad {
				if err == nil {
					t.Fatalf("accepted, read %q", got)
				}
				return
			}
			if err != nil || string(got) != tc.want || cr.ieof != tc.ieof {
				t.Fatalf("got %q ieof=%v err=%v", got, cr.ieof, err)
			}
		})
	}
}

// TestChunkReaderOneRead checks that a buffered body ends with its data,
// which lets a small body reach clamd in a single write.
func TestChunkReaderOneRead(t *testing.T) {
	cr := newChunkReader(reader("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"))
	buf := make([]byte, 100)
	n, err := cr.Read(buf)
	if n != 5 || err != io.EOF {
		t.Fatalf("n=%d err=%v", n, err)
	}
}

func TestPreviewLimit(t *testing.T) {
	if _, _, err := readPreview(reader("5\r\nabcde\r\n0\r\n\r\n"), 4); err == nil {
		t.Fatal("preview longer than announced accepted")
	}
	data, ieof, err := readPreview(reader("4\r\nabcd\r\n0; ieof\r\n\r\n"), 4)
	if err != nil || string(data) != "abcd" || !ieof {
		t.Fatalf("%q %v %v", data, ieof, err)
	}
}

// TestBlockPageGolden pins the page users see, and that a hostile URL and
// threat name are escaped.
func TestBlockPageGolden(t *testing.T) {
	hdr, body := blockResponse(page{Title: "Virus found", Threat: "Eicar<script>", URL: `http://x/"><script>alert(1)</script>`,
		Reason: "This content contains a virus and was not delivered."})
	got := string(hdr) + string(body)
	golden := "testdata/blocked.golden"
	if *update {
		os.WriteFile(golden, []byte(got), 0o644)
	}
	want, _ := os.ReadFile(golden)
	if got != string(want) {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if strings.Contains(got, "<script>") {
		t.Error("block page does not escape")
	}
}

// drainDispatcher stands in for the engine in the fuzzer only: it reads
// streams to their end like clamd and calls a body containing "EICAR"
// infected. Real clamd is used everywhere else (clients_test.go).
type drainDispatcher struct{}

func (drainDispatcher) Do(_ context.Context, job scan.Job) (scan.Result, error) {
	if job.Data == nil {
		return scan.Result{Reply: "ClamAV 1.4.6"}, nil
	}
	b, err := io.ReadAll(job.Data)
	if err != nil {
		return scan.Result{}, err
	}
	if strings.Contains(string(b), "EICAR") {
		return scan.ParseVerdict(scan.StreamObject, "stream: Eicar FOUND")
	}
	return scan.ParseVerdict(scan.StreamObject, "stream: OK")
}

func testServer() *Server {
	return &Server{Dispatcher: drainDispatcher{}, Log: slog.New(slog.DiscardHandler), ReadTimeout: time.Second,
		Settings: config.ICAP{Service: "avscan", Preview: 1024, MaxConnections: 10, OverLimit: "block", OnFailure: "error", OptionsTTL: time.Hour}}
}

func FuzzServeConn(f *testing.F) {
	body := "HTTP/1.1 200 OK\r\n\r\n"
	for _, s := range []string{
		"OPTIONS icap://h/avscan ICAP/1.0\r\n\r\n",
		respHead + "Encapsulated: res-hdr=0, res-body=19\r\n\r\n" + body + "5\r\nEICAR\r\n0\r\n\r\n",
		respHead + "Preview: 2\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\n" + body + "2\r\nab\r\n0\r\n\r\n3\r\ncde\r\n0\r\n\r\n",
		respHead + "Preview: 4\r\nAllow: 204\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\n" + body + "2\r\nab\r\n0; ieof\r\n\r\n",
		"REQMOD icap://h/avscan ICAP/1.0\r\nEncapsulated: req-hdr=0, null-body=18\r\n\r\nGET / HTTP/1.1\r\n\r\n",
		// the bounds: an announced preview far over the allowance, chunk
		// extensions and trailers
		respHead + "Preview: 2000000000\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\n" + body + "100000\r\nab",
		respHead + "Preview: 4096\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\n" + body + "2;a=b;c=d\r\nab\r\n0; ieof\r\nX-T: 1\r\n\r\n",
		respHead + "Encapsulated: res-hdr=0, res-body=262144\r\n\r\n" + body,
	} {
		f.Add([]byte(s))
	}
	srv := testServer()
	pol := &policy.Policy{Name: "fuzz", MaxStream: 1 << 20}
	f.Fuzz(func(t *testing.T, in []byte) { connfuzz.Serve(t, srv, pol, in) })
}

func FuzzReadRequest(f *testing.F) {
	f.Add([]byte(respHead + "Preview: 0\r\nEncapsulated: req-hdr=0, res-hdr=18, res-body=37\r\n\r\nGET / HTTP/1.1\r\n\r\nHTTP/1.1 200 OK\r\n\r\n0; ieof\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(strings.NewReader(string(in)))
		req, err := readRequest(r)
		if err != nil {
			return
		}
		_ = req.URL()
		_ = req.ContentLength()
		if req.HasBody {
			_, _ = io.Copy(io.Discard, newChunkReader(r))
		}
	})
}

// FuzzReadPreview: whatever the client sends, a preview is never more than
// its bound, and its buffer never much larger than what arrived.
func FuzzReadPreview(f *testing.F) {
	f.Add(uint16(4), []byte("2\r\nab\r\n0; ieof\r\n\r\n"))
	f.Add(uint16(2), []byte("100000\r\n"+strings.Repeat("x", 5000)))
	f.Add(uint16(4096), []byte("1;ext="+strings.Repeat("e", 9000)+"\r\na\r\n0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, limit uint16, in []byte) {
		data, _, err := readPreview(bufio.NewReader(strings.NewReader(string(in))), int(limit))
		if err == nil && (len(data) > int(limit) || cap(data) > max(2*len(in), 64<<10)) {
			t.Fatalf("preview of %d bytes (cap %d) for a bound of %d and %d bytes sent", len(data), cap(data), limit, len(in))
		}
	})
}

// TestReadExactlyGrowsAsDataArrives: encapsulated headers announced as
// 256 KiB but never sent cost what was sent, not what was announced.
func TestReadExactlyGrowsAsDataArrives(t *testing.T) {
	b, err := readExactly(strings.NewReader("HTTP/1.1 200 OK\r\n"), maxHTTPHeader)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut short: %v", err)
	}
	if cap(b) > 4<<10 {
		t.Errorf("%d bytes held for 17 received", cap(b))
	}
}
