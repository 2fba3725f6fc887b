package httpapi

import (
	_ "embed"
	"html/template"
	"net/http"
	"time"

	"clamgate/internal/policy"
)

// StatusSource is what the gateway tells the status page beyond the
// board: its backends, the database's reload mode, its policies.
type StatusSource struct {
	Board    *Board
	Backends func() []BackendStatus
	Reload   func() string // "frugal (basis)"; "" when the gateway does not manage reloads
	Policies []string
}

// BackendStatus is one clamd the gateway uses.
type BackendStatus struct {
	Address string `json:"address"`
	Role    string `json:"role"` // primary, fallback
	Up      bool   `json:"up"`
}

// Status is /v1/status's answer and the page's data.
type Status struct {
	Time       time.Time       `json:"time"`
	Engine     EngineStatus    `json:"engine"`
	Backends   []BackendStatus `json:"backends"`
	Policies   []PolicyStatus  `json:"policies"`
	LastErrors []LastError     `json:"last_errors"`
}

// EngineStatus is the engine and its database.
type EngineStatus struct {
	Version
	Answered bool   `json:"answered"` // clamd answered VERSION just now
	Reload   string `json:"reload"`
}

// refreshSeconds is the page's refresh period (meta refresh: no script).
const refreshSeconds = 5

//go:embed status.html
var statusHTML string

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "unknown"
		}
		return time.Since(t).Round(time.Second).String()
	},
}).Parse(statusHTML))

func (s *Server) status(r *http.Request) Status {
	st := Status{Time: time.Now().UTC(), Backends: []BackendStatus{}}
	v, err := s.currentVersion(r.Context())
	st.Engine = EngineStatus{Version: v, Answered: err == nil}
	if s.Status.Reload != nil {
		st.Engine.Reload = s.Status.Reload()
	}
	if s.Status.Backends != nil {
		st.Backends = s.Status.Backends()
	}
	st.Policies, st.LastErrors = s.Status.Board.snapshot(s.current().policies)
	if st.LastErrors == nil {
		st.LastErrors = []LastError{}
	}
	return st
}

// mayRead is the status page's rule: only a policy with status = true.
func (s *Server) mayRead(w http.ResponseWriter, pol *policy.Policy) bool {
	switch {
	case s.Status == nil:
		problem(w, http.StatusNotFound, "no status page here")
	case !pol.Status:
		problem(w, http.StatusForbidden, "policy "+pol.Name+" may not read the status page (status = true)")
	default:
		return true
	}
	return false
}

func (s *Server) statusJSON(w http.ResponseWriter, r *http.Request, pol *policy.Policy) {
	if s.mayRead(w, pol) {
		writeJSON(w, http.StatusOK, s.status(r))
	}
}

func (s *Server) statusHTMLPage(w http.ResponseWriter, r *http.Request, pol *policy.Policy) {
	if !s.mayRead(w, pol) {
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	_ = statusPage.Execute(w, struct {
		Status
		Refresh int
	}{s.status(r), refreshSeconds})
}
