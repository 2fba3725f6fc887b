package httpapi

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzMultipart feeds each, the reading of a client's multipart body,
// arbitrary bodies and content types: it never panics, stops at MaxParts,
// and fails only with a requestError (a status for the client).
func FuzzMultipart(f *testing.F) {
	f.Add("multipart/form-data; boundary=zz", "--zz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc\r\n--zz--\r\n")
	f.Add("multipart/form-data; boundary=zz", "--zz\r\n\r\n--zz--")
	f.Add("multipart/form-data", "x")
	f.Add("multipart/mixed; boundary=\"a b\"", strings.Repeat("--a b\r\n\r\nx\r\n", 300))
	f.Fuzz(func(t *testing.T, ctype, body string) {
		r := httptest.NewRequest("POST", "/v1/scan", strings.NewReader(body))
		r.Header.Set("Content-Type", ctype)
		parts := 0
		err := each(r, func(_, _ string, p io.Reader) error {
			parts++
			_, err := io.Copy(io.Discard, p)
			if err != nil {
				return &requestError{status: 400, msg: err.Error()}
			}
			return nil
		})
		var re *requestError
		if err != nil && !errors.As(err, &re) {
			t.Fatalf("error %v is no requestError", err)
		}
		if parts > MaxParts {
			t.Fatalf("%d parts read", parts)
		}
	})
}

// FuzzParseVersion: clamd's VERSION reply, whatever it is, is read
// without a panic, and a reply read is an engine's.
func FuzzParseVersion(f *testing.F) {
	f.Add("ClamAV 1.4.3/27000/Sat Dec  5 10:00:00 2026")
	f.Add("ClamAV 1.4.6")
	f.Fuzz(func(t *testing.T, reply string) {
		v, err := ParseVersion(reply)
		if err == nil && !strings.HasPrefix(v.Engine, "ClamAV ") {
			t.Fatalf("%q read as %+v", reply, v)
		}
	})
}
