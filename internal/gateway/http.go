package gateway

import (
	"log/slog"
	"maps"
	"slices"

	"clamgate/internal/httpapi"
	"clamgate/internal/identity"
	"clamgate/internal/scan"
)

// newHTTPFront is the HTTP front of cfg. Which policy a bearer token
// chooses is identity's decision, made here and handed to the front as a
// lookup (the front never imports internal/identity).
func newHTTPFront(sv *serving, log *slog.Logger, d *scan.Dispatcher, page *httpapi.StatusSource) *httpapi.Server {
	cfg := sv.cfg
	own := *page
	own.Policies = slices.Sorted(maps.Keys(sv.policies))
	return &httpapi.Server{Dispatcher: d, Log: log, Tokens: identity.NewTokens(sv.policies).Policy,
		ReadTimeout: cfg.ReadTimeout, RequestTimeout: cfg.StreamTimeout, StaleAfter: cfg.Database.MaxAge, Status: &own}
}

// statusSource feeds the HTTP front's status page: the dispatcher's
// board, the backends' health, the reload mode.
func statusSource(board *httpapi.Board, tel *telemetry, life *lifecycle) *httpapi.StatusSource {
	page := &httpapi.StatusSource{Board: board, Backends: func() []httpapi.BackendStatus {
		var out []httpapi.BackendStatus
		for _, b := range tel.backends() {
			out = append(out, httpapi.BackendStatus{Address: b.Address, Role: b.Role, Up: b.Up})
		}
		return out
	}}
	if life != nil {
		page.Reload = func() string {
			m := life.reloader.current()
			return m.Name() + " (" + m.Basis + ")"
		}
	}
	return page
}
