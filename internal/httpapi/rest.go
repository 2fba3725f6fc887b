package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"clamgate/internal/policy"
	"clamgate/internal/scan"
)

// The routes of ajilach/clamav-rest, so that its users change one URL.
// Its answers and status codes, as its README documents them: 200 clean,
// 406 infected, 400 the scan failed, 412 a path that is no readable file,
// 413 too large, 422 a part without a file name, 501 anything else. What
// clamav-rest has no code for (the gateway busy, no engine) keeps the
// native API's 429 and 503: never a 200.

// restResult is one object of /v2/scan's array.
type restResult struct {
	Status      string // OK, FOUND, ERROR
	Description string // the threat, or the error
	FileName    string
}

// restLegacy is /scan's object, without the file name.
type restLegacy struct {
	Status      string
	Description string
}

func (s *Server) restRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v2/scan", s.authed(s.restScanV2))
	mux.HandleFunc("POST /scan", s.authed(s.restScanLegacy))
	mux.HandleFunc("POST /scanHandlerBody", s.authed(s.restScanBody))
	mux.HandleFunc("GET /scanFile", s.authed(s.restScanFile))
	mux.HandleFunc("GET /scanPath", s.authed(s.restScanPath))
	mux.HandleFunc("GET /version", s.authed(s.restVersion))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem(w, http.StatusNotImplemented, "unknown request")
	})
}

// restStatus is an object's status word and code as clamav-rest has them.
func restStatus(o Object) (word string, code int) {
	switch o.Verdict {
	case VerdictClean:
		return "OK", http.StatusOK
	case VerdictInfected:
		return "FOUND", http.StatusNotAcceptable
	}
	return "ERROR", http.StatusBadRequest
}

// severity orders clamav-rest's codes: the answer has the most severe.
func severity(code int) int {
	switch code {
	case http.StatusNotAcceptable:
		return 3
	case http.StatusPreconditionFailed:
		return 2
	case http.StatusBadRequest:
		return 1
	}
	return 0
}

// restMultipart scans each file part; a part without a file name is 422.
func (s *Server) restMultipart(w http.ResponseWriter, r *http.Request, pol *policy.Policy) ([]Object, bool) {
	if !isMultipart(r) {
		problem(w, http.StatusBadRequest, "multipart/form-data expected")
		return nil, false
	}
	ctx, cancel := s.requestContext(r)
	defer cancel()
	s.bodyDeadline(w)
	sc := &scanner{s: s, ctx: ctx, pol: pol, id: info(r).peer.Cert}
	var objs []Object
	err := each(r, func(file, _ string, body io.Reader) error {
		if file == "" {
			return &requestError{status: http.StatusUnprocessableEntity, msg: "Filename is missing in MimePart"}
		}
		obj, err := sc.object(file, body)
		objs = append(objs, obj)
		return err
	})
	if err != nil {
		s.failed(w, r, pol, err)
		return nil, false
	}
	return objs, true
}

func (s *Server) restScanV2(w http.ResponseWriter, r *http.Request, pol *policy.Policy) {
	if !s.allowStream(w, pol) {
		return
	}
	objs, ok := s.restMultipart(w, r, pol)
	if !ok {
		return
	}
	out, code := []restResult{}, http.StatusOK
	for _, o := range objs {
		word, c := restStatus(o)
		out = append(out, restResult{Status: word, Description: o.Threat + o.Error, FileName: o.Name})
		if severity(c) > severity(code) {
			code = c
		}
	}
	writeJSON(w, code, out)
}

// restScanLegacy is clamav-rest's deprecated /scan: one JSON object per
// file, one after the other, without an array around them.
func (s *Server) restScanLegacy(w http.ResponseWriter, r *http.Request, pol *policy.Policy) {
	if !s.allowStream(w, pol) {
		return
	}
	objs, ok := s.restMultipart(w, r, pol)
	if !ok {
		return
	}
	var body bytes.Buffer
	code := http.StatusOK
	for _, o := range objs {
		word, c := restStatus(o)
		_ = json.NewEncoder(&body).Encode(restLegacy{Status: word, Description: o.Threat + o.Error})
		if severity(c) > severity(code) {
			code = c
		}
	}
	w.Header().Set("Deprecation", "true")
	w.Header().Set("Link", `</v2/scan>; rel="successor-version"`)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(body.Bytes())
}

// restScanBody scans the request body; its answer is the text clamav-rest
// prints, "{OK  200}" or "{FOUND Eicar-Signature 406}".
func (s *Server) restScanBody(w http.ResponseWriter, r *http.Request, pol *policy.Policy) {
	if !s.allowStream(w, pol) {
		return
	}
	if pol.MaxStream > 0 && r.ContentLength > pol.MaxStream {
		fail(w, tooLarge(pol))
		return
	}
	ctx, cancel := s.requestContext(r)
	defer cancel()
	s.bodyDeadline(w)
	obj, err := (&scanner{s: s, ctx: ctx, pol: pol, id: info(r).peer.Cert}).object("stream", r.Body)
	if err != nil {
		s.failed(w, r, pol, err)
		return
	}
	word, code := restStatus(obj)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintf(w, "{%s %s %d}", word, obj.Threat+obj.Error, code)
}

// restScanFile scans a file by its path, opened by the gateway beneath
// one of the policy's roots as the clamd front's path scans are, and
// handed to clamd as a descriptor.
func (s *Server) restScanFile(w http.ResponseWriter, r *http.Request, pol *policy.Policy) {
	path := r.URL.Query().Get("path")
	if err := pol.AllowCommand("FILDES"); err != nil {
		problem(w, http.StatusForbidden, err.Error())
		return
	}
	root, rel, ok := pol.RootFor(path)
	if !ok {
		problem(w, http.StatusForbidden, "not under an allowed root of client "+pol.Name)
		return
	}
	f, err := root.Open(rel)
	if err != nil {
		s.Log.Info("scanFile: cannot open", "client", pol.Name, "err", err)
		problem(w, http.StatusPreconditionFailed, "the path is not a readable file")
		return
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		problem(w, http.StatusPreconditionFailed, "the path is not a readable file")
		return
	}
	ctx, cancel := s.requestContext(r)
	defer cancel()
	res, err := s.Dispatcher.Do(ctx, scan.Job{Client: pol.Name, Identity: info(r).peer.Cert, Protocol: "http", Kind: scan.File, File: f, Object: "scanFile"})
	if err != nil {
		s.failed(w, r, pol, engineOrGone(ctx, err))
		return
	}
	o := Object{Verdict: VerdictError, Error: res.Reply}
	switch res.Verdict {
	case scan.Clean:
		o = Object{Verdict: VerdictClean}
	case scan.Infected:
		o = Object{Verdict: VerdictInfected, Threat: res.Threat}
	}
	word, code := restStatus(o)
	writeJSON(w, code, restResult{Status: word, Description: o.Threat + o.Error, FileName: path})
}

func engineOrGone(ctx interface{ Err() error }, err error) error {
	if ctx.Err() != nil {
		return err
	}
	return engineError(err)
}

// restVersion is clamav-rest's /version: clamd's version, the database's
// version and its date.
func (s *Server) restVersion(w http.ResponseWriter, r *http.Request, _ *policy.Policy) {
	v, err := s.currentVersion(r.Context())
	if err != nil {
		fail(w, engineError(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"Clamd": v.Engine, "Signatures": v.Database, "Signature_date": v.Built.Format("2006-01-02T15:04:05Z")})
}

func (s *Server) allowStream(w http.ResponseWriter, pol *policy.Policy) bool {
	if err := pol.AllowCommand("INSTREAM"); err != nil {
		problem(w, http.StatusForbidden, err.Error())
		return false
	}
	return true
}
