package icap_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"clamgate/internal/testenv"
)

// TestHostileInput sends malformed and hostile requests to a real gateway:
// each gets a clean ICAP error, and the gateway keeps serving.
func TestHostileInput(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	host, port := icapGateway(t, c, "[icap]\nmax_connections = 4\nrequest_timeout = \"4s\"\n")
	addr := net.JoinHostPort(host, port)
	head := "RESPMOD icap://127.0.0.1/avscan ICAP/1.0\r\nHost: x\r\n"
	http := "HTTP/1.1 200 OK\r\n\r\n"
	enc := fmt.Sprintf("Encapsulated: res-hdr=0, res-body=%d\r\n\r\n", len(http))
	for _, tc := range []struct{ name, req, want string }{
		{"bad chunk size", head + enc + http + "zz\r\nabc\r\n0\r\n\r\n", "ICAP/1.0 400 "},
		{"chunk size overflow", head + enc + http + "ffffffffffffffffffff\r\n", "ICAP/1.0 400 "},
		{"chunk longer than announced", head + enc + http + "2\r\nabcdef\r\n0\r\n\r\n", "ICAP/1.0 400 "},
		{"missing Encapsulated", head + "\r\n", "ICAP/1.0 400 "},
		{"huge header", head + "X-Junk: " + strings.Repeat("x", 100<<10) + "\r\n" + enc, "ICAP/1.0 400 "},
		{"huge encapsulated header", head + "Encapsulated: res-hdr=0, res-body=99999999\r\n\r\n", "ICAP/1.0 400 "},
		{"preview longer than announced", head + "Preview: 2\r\n" + enc + http + "4\r\nabcd\r\n0\r\n\r\n", "ICAP/1.0 400 "},
		// Refused on the header alone: the preview would be held in memory.
		{"preview of 2 GB announced", head + "Preview: 2000000000\r\n" + enc + http + "4\r\nabcd\r\n0\r\n\r\n", "ICAP/1.0 400 "},
		{"preview over the unasked allowance", head + "Preview: 4097\r\n" + enc + http + "4\r\nabcd\r\n0\r\n\r\n", "ICAP/1.0 400 "},
		{"unknown method", "FOO icap://127.0.0.1/avscan ICAP/1.0\r\n\r\n", "ICAP/1.0 501 "},
		{"unknown service", "OPTIONS icap://127.0.0.1/nope ICAP/1.0\r\n\r\n", "ICAP/1.0 404 "},
		{"HTTP not ICAP", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "ICAP/1.0 505 "},
		{"binary junk", "\x00\x01\x02\xff\r\n\r\n", "ICAP/1.0 400 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := rawICAP(t, addr, []byte(tc.req)); !strings.HasPrefix(got, tc.want) {
				t.Errorf("got %q, want %q", truncate(got), tc.want)
			}
		})
	}
	t.Run("slow client", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.Write([]byte(head)) // and then nothing: read_timeout is 2s
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 200)
		n, _ := conn.Read(buf)
		if !strings.HasPrefix(string(buf[:n]), "ICAP/1.0 408 ") {
			t.Errorf("slow client got %q", buf[:n])
		}
	})
	t.Run("trickling client", func(t *testing.T) {
		// One byte of body every half second refreshes the 2 s read_timeout
		// forever; the request's 4 s total ends it. The 60 s is a liveness
		// bound, not a measurement.
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.Write([]byte(head + enc + http))
		got := make(chan string, 1)
		go func() {
			buf := make([]byte, 200)
			conn.SetReadDeadline(time.Now().Add(60 * time.Second))
			n, _ := conn.Read(buf)
			got <- string(buf[:n])
		}()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case reply := <-got:
				if !strings.HasPrefix(reply, "ICAP/1.0 408 ") {
					t.Errorf("trickling client got %q, want 408", reply)
				}
				return
			case <-tick.C:
				conn.Write([]byte("1\r\nx\r\n"))
			}
		}
	})
	t.Run("connection limit", func(t *testing.T) {
		// Each held connection is answered once, so it is surely counted,
		// and then kept open (well within read_timeout).
		// The earlier subtests' connections may still be on their way
		// out (lingering after their error): a 503 is tried again.
		var held []net.Conn
		for tries := 0; len(held) < 4; tries++ {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			conn.Write([]byte("OPTIONS icap://127.0.0.1/avscan ICAP/1.0\r\n\r\n"))
			buf := make([]byte, 4096)
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, _ := conn.Read(buf)
			switch got := string(buf[:n]); {
			case strings.HasPrefix(got, "ICAP/1.0 200 "):
				held = append(held, conn)
			case strings.HasPrefix(got, "ICAP/1.0 503 ") && tries < 50:
				conn.Close()
				time.Sleep(100 * time.Millisecond)
			default:
				t.Fatalf("held connection not served: %q", got)
			}
		}
		if got := rawICAP(t, addr, []byte("OPTIONS icap://127.0.0.1/avscan ICAP/1.0\r\n\r\n")); !strings.HasPrefix(got, "ICAP/1.0 503 ") {
			t.Errorf("fifth connection: %q", truncate(got))
		}
		// A client that sends its request and reads to the end reads the
		// 503, then EOF: never a reset (issue 29).
		for i := range 10 {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			conn.Write([]byte("OPTIONS icap://127.0.0.1/avscan ICAP/1.0\r\n\r\n"))
			got, err := io.ReadAll(conn)
			conn.Close()
			if err != nil || !strings.HasPrefix(string(got), "ICAP/1.0 503 ") {
				t.Fatalf("turned-away client %d reading to EOF: %q, %v", i, truncate(string(got)), err)
			}
		}
		for _, c := range held {
			c.Close()
		}
	})
	t.Run("still serving", func(t *testing.T) {
		time.Sleep(200 * time.Millisecond) // the held connections are released
		got := rawICAP(t, addr, respmod([]byte(testenv.EICAR), 1024, true))
		if !strings.Contains(got, "X-Virus-ID: "+testenv.EicarThreat) {
			t.Errorf("after hostile input: %q", truncate(got))
		}
	})
}

// TestPersistentConnection sends several requests on one connection, with
// and without preview, clean and infected, and REQMOD too.
func TestPersistentConnection(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	host, port := icapGateway(t, c, "")
	clean := bytes.Repeat([]byte("clean "), 1000)
	var req bytes.Buffer
	req.Write(respmod(clean, 1024, true))                  // 204 after continue
	req.Write(respmod([]byte(testenv.EICAR), 1024, false)) // infected inside the preview
	req.Write(respmod(clean, -1, false))                   // echoed
	req.Write(reqmod([]byte(testenv.EICAR)))               // an upload
	req.Write(respmod(clean[:10], 1024, false))            // 204 inside the preview
	got := rawICAP(t, net.JoinHostPort(host, port), req.Bytes())
	var statuses []string
	for _, l := range strings.Split(got, "\r\n") {
		if strings.HasPrefix(l, "ICAP/1.0 ") {
			statuses = append(statuses, l)
		}
	}
	want := []string{"ICAP/1.0 100 Continue", "ICAP/1.0 204 No Content", "ICAP/1.0 200 OK", "ICAP/1.0 200 OK", "ICAP/1.0 200 OK", "ICAP/1.0 204 No Content"}
	if strings.Join(statuses, "|") != strings.Join(want, "|") {
		t.Fatalf("statuses %q, want %q\n%s", statuses, want, truncate(got))
	}
	if strings.Count(got, "X-Virus-ID: "+testenv.EicarThreat) != 2 || !strings.Contains(got, string(clean)) {
		t.Errorf("verdicts or echo wrong:\n%s", truncate(got))
	}
}

func reqmod(body []byte) []byte {
	httpHdr := fmt.Sprintf("POST http://example.org/upload HTTP/1.1\r\nHost: example.org\r\nContent-Length: %d\r\n\r\n", len(body))
	return []byte(fmt.Sprintf("REQMOD icap://127.0.0.1/avscan ICAP/1.0\r\nHost: x\r\nEncapsulated: req-hdr=0, req-body=%d\r\n\r\n%s%x\r\n%s\r\n0\r\n\r\n",
		len(httpHdr), httpHdr, len(body), body))
}

func truncate(s string) string {
	if len(s) > 600 {
		return s[:600] + "..."
	}
	return s
}
