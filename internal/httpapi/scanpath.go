package httpapi

import (
	"net/http"
	"strings"

	"clamgate/internal/pathscan"
	"clamgate/internal/policy"
)

// restPathResult is one line of clamav-rest's /scanPath answer: the fields
// its README shows (go-clamd's result of one line of clamd's ALLMATCHSCAN
// reply). Hash and Size are what go-clamd reads from a FOUND line that
// carries them; clamd does not print them here, so they stay empty.
type restPathResult struct {
	Raw         string
	Description string
	Path        string
	Hash        string
	Size        int
	Status      string // OK, FOUND, ERROR
}

// walker runs this front's path scans; it shares the gateway-wide bound
// on directory descriptors when the gateway hands one.
func (s *Server) walker() *pathscan.Walker {
	s.walkOnce.Do(func() { s.walk = pathscan.NewWalker(s.Dispatcher, s.Log, s.Walks) })
	return s.walk
}

// restScanPath scans a file or a directory tree by its path, as
// clamav-rest does with clamd's ALLMATCHSCAN (the walk stops at the first
// infected file), through the walk the clamd front uses: confined to the
// policy's roots, every file opened by the gateway and handed to clamd as
// a descriptor. The answer is one object per line of clamd's reply; its
// status the most severe: 406 infected, 412 a path the gateway could not
// read (so not scanned), 400 a scan error, 200 clean.
func (s *Server) restScanPath(w http.ResponseWriter, r *http.Request, pol *policy.Policy) {
	path := r.URL.Query().Get("path")
	if path == "" {
		problem(w, http.StatusBadRequest, "URL param 'path' is missing")
		return
	}
	if err := pol.AllowCommand("ALLMATCHSCAN"); err != nil {
		problem(w, http.StatusForbidden, err.Error())
		return
	}
	ctx, cancel := s.requestContext(r)
	defer cancel()
	var (
		out     = []restPathResult{}
		code    = http.StatusOK
		refused string
		abort   error
	)
	req := pathscan.Request{Policy: pol, Identity: info(r).peer.Cert, Protocol: "http", Path: path, StopAtFirst: true, OKIfEmpty: true}
	s.walker().Walk(ctx, req, func(l pathscan.Line) {
		switch {
		case l.Refused:
			refused = l.Text
			return
		case l.Err != nil:
			abort = l.Err
			return
		}
		res, c := pathResult(l)
		out = append(out, res)
		if severity(c) > severity(code) {
			code = c
		}
	})
	switch {
	case refused != "":
		s.Log.Warn("scanPath refused", "client", pol.Name, "peer", info(r).peer.String(), "reason", refused)
		problem(w, http.StatusForbidden, "not under an allowed root of client "+pol.Name)
	case abort != nil:
		s.failed(w, r, pol, engineOrGone(ctx, abort))
	default:
		writeJSON(w, code, out)
	}
}

// pathResult is one line of the walk as clamav-rest shows it.
func pathResult(l pathscan.Line) (restPathResult, int) {
	res := restPathResult{Raw: l.Text, Path: l.Path}
	switch {
	case l.Status == pathscan.Found:
		res.Status, res.Description = "FOUND", l.Threat
		return res, http.StatusNotAcceptable
	case l.Status == pathscan.OK:
		res.Status = "OK"
		return res, http.StatusOK
	}
	res.Status = "ERROR"
	res.Description = strings.TrimSuffix(strings.TrimPrefix(l.Text, l.Path+": "), " ERROR")
	if l.Unreadable {
		return res, http.StatusPreconditionFailed
	}
	return res, http.StatusBadRequest
}
