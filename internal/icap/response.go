package icap

import (
	"bufio"
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"strings"
	"time"
)

var statusText = map[int]string{
	100: "Continue", 200: "OK", 204: "No Content", 400: "Bad Request", 403: "Forbidden", 404: "ICAP Service Not Found",
	405: "Method Not Allowed For Service", 408: "Request Timeout", 500: "Server Error",
	501: "Method Not Implemented", 503: "Service Overloaded", 505: "ICAP Version Not Supported",
}

// response is an ICAP response being written.
type response struct {
	w      *bufio.Writer
	istag  string
	header [][2]string
}

func (r *response) set(k, v string) { r.header = append(r.header, [2]string{k, v}) }

// start writes the status line and ICAP headers.
func (r *response) start(code int, encapsulated string) {
	fmt.Fprintf(r.w, "ICAP/1.0 %d %s\r\n", code, statusText[code])
	fmt.Fprintf(r.w, "Date: %s\r\n", time.Now().UTC().Format(time.RFC1123))
	r.w.WriteString("Server: clamgate\r\n")
	if r.istag != "" {
		fmt.Fprintf(r.w, "ISTag: %s\r\n", r.istag)
	}
	for _, h := range r.header {
		fmt.Fprintf(r.w, "%s: %s\r\n", h[0], h[1])
	}
	fmt.Fprintf(r.w, "Encapsulated: %s\r\n\r\n", encapsulated)
}

// status writes a response without a body: 204, 100 and the errors.
func (r *response) status(code int) error {
	r.start(code, "null-body=0")
	return r.w.Flush()
}

// message writes a 200 carrying an HTTP header block and a body, relayed in
// chunks as it is read.
func (r *response) message(hdrName string, hdr []byte, bodyName string, body io.Reader) error {
	r.start(200, fmt.Sprintf("%s=0, %s=%d", hdrName, bodyName, len(hdr)))
	r.w.Write(hdr)
	if body == nil {
		return r.w.Flush()
	}
	if err := writeChunked(r.w, body); err != nil {
		return err
	}
	return r.w.Flush()
}

func writeChunked(w *bufio.Writer, body io.Reader) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			fmt.Fprintf(w, "%x\r\n", n)
			w.Write(buf[:n])
			w.WriteString("\r\n")
		}
		if err == io.EOF {
			_, err = w.WriteString("0\r\n\r\n")
			return err
		}
		if err != nil {
			return err
		}
	}
}

//go:embed blocked.html
var blockedHTML string

var blockedPage = template.Must(template.New("blocked").Parse(blockedHTML))

// page is what the block page says.
type page struct {
	Title  string // "Virus found", "Not scanned"
	Threat string
	URL    string
	Reason string
}

// blockResponse is a complete HTTP 403 response: header block and HTML body.
func blockResponse(p page) (hdr, body []byte) {
	var b bytes.Buffer
	if err := blockedPage.Execute(&b, p); err != nil {
		b.WriteString("Forbidden\n") // the template is static: cannot happen
	}
	h := strings.Join([]string{
		"HTTP/1.1 403 Forbidden",
		"Content-Type: text/html; charset=utf-8",
		"Content-Length: " + strconv.Itoa(b.Len()),
		"Cache-Control: no-store",
		"X-Content-Type-Options: nosniff",
		"", "",
	}, "\r\n")
	return []byte(h), b.Bytes()
}
