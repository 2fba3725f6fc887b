package httpapi

import (
	_ "embed"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"

	"clamgate/internal/policy"
)

//go:embed openapi.json
var openAPI []byte

// OpenAPI is the native API's description, served at /v1/openapi.json.
func OpenAPI() []byte { return openAPI }

// ScanResponse is /v1/scan's answer.
type ScanResponse struct {
	Objects []Object `json:"objects"`
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/scan", s.authed(s.v1Scan))
	mux.HandleFunc("GET /v1/version", s.authed(s.v1Version))
	mux.HandleFunc("GET /v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPI)
	})
	mux.HandleFunc("GET /v1/status", s.authed(s.statusJSON))
	mux.HandleFunc("GET /{$}", s.authed(s.statusHTMLPage))
	s.restRoutes(mux)
	return mux
}

// authed runs h with the request's policy: the one its bearer token
// chooses, or the listener's when that policy needs none.
func (s *Server) authed(h func(w http.ResponseWriter, r *http.Request, pol *policy.Policy)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if info(r).drained() {
			w.Header().Set("Connection", "close")
		}
		pol, err := s.policyFor(r)
		if err != nil {
			if err.status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="clamgate"`)
			}
			fail(w, err)
			return
		}
		h(w, r, pol)
	}
}

func (s *Server) policyFor(r *http.Request) (*policy.Policy, *requestError) {
	ci := info(r)
	auth := r.Header.Get("Authorization")
	if auth == "" {
		if len(ci.pol.TokensSHA256) > 0 {
			return nil, &requestError{status: http.StatusUnauthorized, msg: "a bearer token is required"}
		}
		return ci.pol, nil
	}
	token, ok := cutBearer(auth)
	var pol *policy.Policy
	if lookup := s.current().tokens; ok && lookup != nil {
		pol = lookup(token)
	}
	if pol == nil {
		s.Log.Warn("request refused: unknown bearer token", "protocol", "http", "peer", ci.peer.String(), "path", r.URL.Path)
		return nil, &requestError{status: http.StatusUnauthorized, msg: "unknown bearer token"}
	}
	return pol, nil
}

func cutBearer(h string) (string, bool) {
	if len(h) < 7 || !equalFold(h[:7], "Bearer ") {
		return "", false
	}
	return h[7:], true
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}

// v1Scan scans the body, or each file of a multipart body.
func (s *Server) v1Scan(w http.ResponseWriter, r *http.Request, pol *policy.Policy) {
	if err := pol.AllowCommand("INSTREAM"); err != nil {
		fail(w, &requestError{status: http.StatusForbidden, msg: err.Error()})
		return
	}
	if !isMultipart(r) && pol.MaxStream > 0 && r.ContentLength > pol.MaxStream {
		fail(w, tooLarge(pol)) // before a byte of the body is read (no 100 Continue)
		return
	}
	ctx, cancel := s.requestContext(r)
	defer cancel()
	s.bodyDeadline(w)
	sc := &scanner{s: s, ctx: ctx, pol: pol, id: info(r).peer.Cert}
	var out ScanResponse
	var err error
	if isMultipart(r) {
		err = each(r, func(file, field string, body io.Reader) error {
			if file == "" {
				_, err := io.CopyN(io.Discard, body, maxField+1)
				if err == nil {
					return &requestError{status: http.StatusBadRequest, msg: "form field " + strconv.Quote(field) + " larger than " + strconv.Itoa(maxField) + " bytes"}
				}
				return nil
			}
			obj, err := sc.object(file, body)
			out.Objects = append(out.Objects, obj)
			return err
		})
		if err == nil && len(out.Objects) == 0 {
			err = &requestError{status: http.StatusBadRequest, msg: "multipart body without a file part (one with a filename)"}
		}
	} else {
		var obj Object
		obj, err = sc.object(objectName(r), r.Body)
		out.Objects = append(out.Objects, obj)
	}
	if err != nil {
		s.failed(w, r, pol, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// failed answers a request that was not completed, or logs why there is
// no one to answer.
func (s *Server) failed(w http.ResponseWriter, r *http.Request, pol *policy.Policy, err error) {
	re, ok := err.(*requestError)
	if !ok { // the client went away, or the request's time ran out
		s.Log.Info("http request abandoned", "client", pol.Name, "peer", info(r).peer.String(), "path", r.URL.Path, "cause", err)
		re = &requestError{status: http.StatusServiceUnavailable, msg: "request abandoned: " + err.Error(), retryAfter: 10}
	}
	fail(w, re)
}

func tooLarge(pol *policy.Policy) *requestError {
	return &requestError{status: http.StatusRequestEntityTooLarge,
		msg: "object larger than policy " + pol.Name + "'s max_object (" + strconv.FormatInt(pol.MaxStream, 10) + " bytes)"}
}

// bodyDeadline bounds the reading of the whole body by RequestTimeout.
func (s *Server) bodyDeadline(w http.ResponseWriter) {
	if s.RequestTimeout > 0 {
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.RequestTimeout))
	}
}

func (s *Server) v1Version(w http.ResponseWriter, r *http.Request, _ *policy.Policy) {
	v, err := s.currentVersion(r.Context())
	if err != nil {
		fail(w, engineError(err))
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// Problem is the body of every error answer of /v1.
type Problem struct {
	Error string `json:"error"`
}

func fail(w http.ResponseWriter, e *requestError) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	problem(w, e.status, e.msg)
}

func problem(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, Problem{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
