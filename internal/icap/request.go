package icap

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
)

// Limits on what a client may send before its body. squid's own limits on
// HTTP headers are 64 KiB for a request and 64 KiB for a reply.
const (
	maxICAPHeader = 64 << 10
	maxHTTPHeader = 256 << 10
	maxLine       = 8 << 10
)

// statusError is a request the server answers with an ICAP error status.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return fmt.Sprintf("ICAP %d: %s", e.code, e.msg) }

func badRequest(format string, args ...any) error {
	return &statusError{400, fmt.Sprintf(format, args...)}
}

// section is one entry of the Encapsulated header: "res-hdr=137".
type section struct {
	name   string
	offset int
}

// Request is an ICAP request up to (not including) its body.
type Request struct {
	Method    string
	URI       string
	Service   string // path of the URI without its leading slash
	Header    textproto.MIMEHeader
	sections  []section
	ReqHdr    []byte // encapsulated HTTP request header block, if any
	ResHdr    []byte // encapsulated HTTP response header block, if any
	Preview   int    // -1 when the client sends no preview
	Allow204  bool
	HasBody   bool // the last section is a body, not null-body
	closeConn bool // Connection: close
}

// readRequest reads an ICAP request line, its headers and the encapsulated
// HTTP headers. io.EOF means the client closed between requests.
func readRequest(r *bufio.Reader) (*Request, error) {
	budget := maxICAPHeader
	line, err := readLine(r, &budget)
	if err != nil {
		if errors.Is(err, io.EOF) && line == "" {
			return nil, io.EOF
		}
		return nil, err
	}
	req := &Request{Preview: -1}
	if err := req.parseRequestLine(line); err != nil {
		return nil, err
	}
	if req.Header, err = readHeader(r, &budget); err != nil {
		return nil, err
	}
	if err := req.parseHeader(); err != nil {
		return nil, err
	}
	return req, req.readEncapsulated(r)
}

func (req *Request) parseRequestLine(line string) error {
	method, rest, ok1 := strings.Cut(line, " ")
	uri, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || method == "" {
		return badRequest("malformed request line")
	}
	if proto != "ICAP/1.0" {
		return &statusError{505, "ICAP version not supported"}
	}
	switch method {
	case "OPTIONS", "REQMOD", "RESPMOD":
	default:
		return &statusError{501, "method not implemented"}
	}
	// squid names a service it reaches over TLS icaps://.
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "icap" && u.Scheme != "icaps") || u.Host == "" {
		return badRequest("request URI is not icap://host/service")
	}
	req.Method, req.URI, req.Service = method, uri, strings.TrimPrefix(u.Path, "/")
	return nil
}

func (req *Request) parseHeader() error {
	h := req.Header
	if p := h.Get("Preview"); p != "" {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 0 {
			return badRequest("bad Preview header")
		}
		req.Preview = n
	}
	for _, a := range h.Values("Allow") {
		for _, v := range strings.Split(a, ",") {
			if strings.TrimSpace(v) == "204" {
				req.Allow204 = true
			}
		}
	}
	req.closeConn = strings.EqualFold(strings.TrimSpace(h.Get("Connection")), "close")
	enc := h.Get("Encapsulated")
	if enc == "" {
		if req.Method == "OPTIONS" {
			return nil
		}
		return badRequest("missing Encapsulated header")
	}
	var err error
	req.sections, err = parseEncapsulated(enc)
	return err
}

var sectionNames = map[string]bool{
	"req-hdr": true, "res-hdr": true, "req-body": true, "res-body": true, "null-body": true, "opt-body": true,
}

// parseEncapsulated reads "req-hdr=0, res-hdr=137, res-body=296": header
// sections in increasing order, ended by exactly one body or null-body.
func parseEncapsulated(v string) ([]section, error) {
	var out []section
	for _, part := range strings.Split(v, ",") {
		name, off, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(off)
		if !ok || err != nil || n < 0 || !sectionNames[name] {
			return nil, badRequest("malformed Encapsulated header")
		}
		if len(out) > 0 && (n < out[len(out)-1].offset || isBody(out[len(out)-1].name)) {
			return nil, badRequest("Encapsulated sections out of order")
		}
		out = append(out, section{name, n})
	}
	if !isBody(out[len(out)-1].name) {
		return nil, badRequest("Encapsulated header has no body or null-body")
	}
	if out[len(out)-1].offset > maxHTTPHeader {
		return nil, badRequest("encapsulated HTTP headers larger than %d bytes", maxHTTPHeader)
	}
	return out, nil
}

func isBody(name string) bool { return strings.HasSuffix(name, "-body") }

// readEncapsulated reads the HTTP header blocks that precede the body.
func (req *Request) readEncapsulated(r *bufio.Reader) error {
	if len(req.sections) == 0 {
		return nil
	}
	last := req.sections[len(req.sections)-1]
	req.HasBody = last.name != "null-body"
	buf, err := readExactly(r, last.offset)
	if err != nil {
		return fmt.Errorf("reading encapsulated headers: %w", err)
	}
	for i, s := range req.sections[:len(req.sections)-1] {
		block := buf[s.offset:req.sections[i+1].offset]
		switch s.name {
		case "req-hdr":
			req.ReqHdr = block
		case "res-hdr":
			req.ResHdr = block
		}
	}
	switch req.Method {
	case "REQMOD":
		if req.ReqHdr == nil {
			return badRequest("REQMOD without req-hdr")
		}
	case "RESPMOD":
		if req.ResHdr == nil {
			return badRequest("RESPMOD without res-hdr")
		}
	}
	return nil
}

// readExactly reads n bytes, growing its buffer as they arrive rather than
// allocating what the client announced before it sent anything: an idle
// connection costs no more than the bytes it really sent.
func readExactly(r io.Reader, n int) ([]byte, error) {
	var buf bytes.Buffer
	m, err := io.CopyN(&buf, r, int64(n))
	if m < int64(n) && errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return buf.Bytes(), err
}

// readLine reads one CRLF (or LF) line, charging it to budget.
func readLine(r *bufio.Reader, budget *int) (string, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > maxLine || len(line) > *budget {
			return "", badRequest("header line too long")
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if len(line) > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return string(line), err
		}
	}
	*budget -= len(line)
	return strings.TrimRight(string(line), "\r\n"), nil
}

func readHeader(r *bufio.Reader, budget *int) (textproto.MIMEHeader, error) {
	h := textproto.MIMEHeader{}
	for {
		line, err := readLine(r, budget)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if line == "" {
			return h, nil
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, badRequest("malformed header line")
		}
		h.Add(textproto.CanonicalMIMEHeaderKey(k), strings.TrimSpace(v))
	}
}

// httpField is the value of one field of an encapsulated HTTP header
// block. Encapsulated headers are echoed back byte for byte, so they are
// only inspected, never rebuilt.
func httpField(block []byte, field string) string {
	lines := bytes.Split(block, []byte("\n"))
	for _, l := range lines[1:] {
		k, v, ok := bytes.Cut(l, []byte(":"))
		if ok && strings.EqualFold(string(bytes.TrimSpace(k)), field) {
			return strings.TrimSpace(string(v))
		}
	}
	return ""
}

func firstLine(block []byte) string {
	l, _, _ := bytes.Cut(block, []byte("\n"))
	return strings.TrimRight(string(l), "\r")
}

// URL is the address of the object the request is about, for the block page
// and the logs: the HTTP request target, made absolute with Host.
func (req *Request) URL() string {
	if req.ReqHdr == nil {
		return ""
	}
	parts := strings.Fields(firstLine(req.ReqHdr))
	if len(parts) < 2 {
		return ""
	}
	target := parts[1]
	if strings.HasPrefix(target, "/") {
		if host := httpField(req.ReqHdr, "Host"); host != "" {
			return "http://" + host + target
		}
	}
	return target
}

// ContentLength is the announced size of the encapsulated body, or -1.
func (req *Request) ContentLength() int64 {
	block := req.ResHdr
	if req.Method == "REQMOD" {
		block = req.ReqHdr
	}
	n, err := strconv.ParseInt(httpField(block, "Content-Length"), 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}
