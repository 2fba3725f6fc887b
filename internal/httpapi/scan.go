package httpapi

import (
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"

	"clamgate/internal/policy"
	"clamgate/internal/scan"
)

// Object is the scan of one object, as /v1/scan answers it.
type Object struct {
	Name     string `json:"name"`
	Size     int64  `json:"size"`
	Verdict  string `json:"verdict"` // clean, infected, error
	Threat   string `json:"threat,omitempty"`
	Error    string `json:"error,omitempty"`
	Database string `json:"database"` // the database version it was scanned with
}

// Verdicts as the API names them.
const (
	VerdictClean    = "clean"
	VerdictInfected = "infected"
	VerdictError    = "error"
)

// requestError is a request the front could not complete: the status and
// what the client is told. A request with one never answers 200.
type requestError struct {
	status     int
	msg        string
	retryAfter int // seconds; 0 = no Retry-After
}

func (e *requestError) Error() string { return e.msg }

// scanner runs the scans of one request for one policy.
type scanner struct {
	s   *Server
	ctx context.Context
	pol *policy.Policy
	id  string // the client's certificate identity on a tls: listener, for the audit log
}

// object streams body to the dispatcher, which spools it within the
// budget as it arrives, and reads the verdict. The error is a
// *requestError, or ctx's cause when the client went away.
func (sc *scanner) object(name string, body io.Reader) (Object, error) {
	lr := &limitReader{r: body, max: sc.pol.MaxStream}
	job := scan.Job{Client: sc.pol.Name, Identity: sc.id, Protocol: "http", Kind: scan.Stream, Data: lr, Object: "stream"}
	res, err := sc.s.Dispatcher.Do(sc.ctx, job)
	obj := Object{Name: name, Size: lr.n, Database: sc.s.databaseVersion(sc.ctx)}
	switch {
	case lr.over:
		return obj, tooLarge(sc.pol)
	case sc.ctx.Err() != nil:
		return obj, context.Cause(sc.ctx)
	case lr.err != nil:
		return obj, &requestError{status: http.StatusBadRequest, msg: "the request body could not be read: " + lr.err.Error()}
	case err != nil:
		return obj, engineError(err)
	}
	switch res.Verdict {
	case scan.Clean:
		obj.Verdict = VerdictClean
	case scan.Infected:
		obj.Verdict, obj.Threat = VerdictInfected, res.Threat
	default:
		obj.Verdict, obj.Error = VerdictError, res.Reply
	}
	return obj, nil
}

// engineError words a job the dispatcher did not complete: the client
// should come back later, and is told when.
func engineError(err error) *requestError {
	var busy *scan.BusyError
	var held *scan.HeldError
	switch {
	case errors.As(err, &busy):
		return &requestError{status: http.StatusTooManyRequests, msg: err.Error(), retryAfter: 5}
	case errors.As(err, &held):
		return &requestError{status: http.StatusServiceUnavailable, msg: err.Error(), retryAfter: 30}
	}
	return &requestError{status: http.StatusServiceUnavailable, msg: "no engine could scan the object: " + err.Error(), retryAfter: 10}
}

// limitReader counts what it reads and fails past max bytes.
type limitReader struct {
	r    io.Reader
	n    int64
	max  int64
	over bool
	err  error // the body's own read error
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.over {
		return 0, errTooLarge
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.max > 0 && l.n > l.max {
		l.over = true
		return 0, errTooLarge
	}
	if err != nil && err != io.EOF {
		l.err = err
	}
	return n, err
}

// each calls fn for every file part of a multipart body, in order, with
// the part's file name ("" for a part that has none) and its form name.
// Parts past MaxParts, or with a header past maxPartHeader, make the
// request malformed.
func each(r *http.Request, fn func(file, field string, body io.Reader) error) error {
	_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || params["boundary"] == "" {
		return &requestError{status: http.StatusBadRequest, msg: "multipart/form-data without a boundary"}
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	for i := 0; ; i++ {
		part, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			if i == 0 {
				return &requestError{status: http.StatusBadRequest, msg: "multipart body without parts"}
			}
			return nil
		}
		if err != nil {
			if ctxErr := r.Context().Err(); ctxErr != nil {
				return context.Cause(r.Context())
			}
			return &requestError{status: http.StatusBadRequest, msg: "malformed multipart body: " + err.Error()}
		}
		if i >= MaxParts {
			return &requestError{status: http.StatusBadRequest, msg: "more than " + strconv.Itoa(MaxParts) + " parts"}
		}
		if headerSize(part) > maxPartHeader {
			return &requestError{status: http.StatusRequestHeaderFieldsTooLarge, msg: "a part's header is larger than " + strconv.Itoa(maxPartHeader) + " bytes"}
		}
		if err := fn(part.FileName(), part.FormName(), part); err != nil {
			return err
		}
	}
}

func headerSize(p *multipart.Part) int {
	n := 0
	for k, vs := range p.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// objectName is what a raw upload is called in the answer: ?name=, else
// Content-Disposition's filename, else "stream".
func objectName(r *http.Request) string {
	if n := r.URL.Query().Get("name"); n != "" {
		return n
	}
	if _, params, err := mime.ParseMediaType(r.Header.Get("Content-Disposition")); err == nil && params["filename"] != "" {
		return params["filename"]
	}
	return "stream"
}

func isMultipart(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return strings.HasPrefix(mt, "multipart/")
}

// requestContext is a request's scans' context: it ends with
// scan.ErrClientGone as its cause when the client hangs up (net/http ends
// the request's context; the gateway's watcher ends the connection's), so
// that the dispatcher drops the job and counts it abandoned, and after the
// front's RequestTimeout.
func (s *Server) requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(r.Context()))
	conn := info(r).jobCtx
	stopReq := context.AfterFunc(r.Context(), func() { cancel(scan.ErrClientGone) })
	stopConn := context.AfterFunc(conn, func() { cancel(context.Cause(conn)) })
	tctx, tcancel := ctx, context.CancelFunc(func() {})
	if s.RequestTimeout > 0 {
		tctx, tcancel = context.WithTimeoutCause(ctx, s.RequestTimeout, errors.New("request_timeout"))
	}
	return tctx, func() { stopReq(); stopConn(); tcancel(); cancel(nil) }
}
