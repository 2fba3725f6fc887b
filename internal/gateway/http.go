package gateway

import (
	"log/slog"
	"maps"
	"slices"

	"clamgate/internal/config"
	"clamgate/internal/httpapi"
	"clamgate/internal/identity"
	"clamgate/internal/pathscan"
	"clamgate/internal/policy"
	"clamgate/internal/scan"
)

// newHTTPFront is the HTTP front of cfg. Which policy a bearer token
// chooses is identity's decision, made here and handed to the front as a
// lookup (the front never imports internal/identity).
func newHTTPFront(sv *serving, log *slog.Logger, d *scan.Dispatcher, page *httpapi.StatusSource, walks *pathscan.Slots) *httpapi.Server {
	cfg := sv.cfg
	own := *page
	own.Policies = slices.Sorted(maps.Keys(sv.policies))
	return &httpapi.Server{Dispatcher: d, Log: log, Tokens: identity.NewTokens(sv.policies).Policy,
		ReadTimeout: cfg.ReadTimeout, RequestTimeout: cfg.StreamTimeout, StaleAfter: cfg.Database.MaxAge, Status: &own, Walks: walks}
}

// sameHTTPFront says whether the HTTP front built for cur serves next as
// it is, once reconfigured (reconfigureHTTP): its connections then go on.
func sameHTTPFront(cur, next *config.Config) bool {
	return cur.ReadTimeout == next.ReadTimeout && cur.StreamTimeout == next.StreamTimeout && cur.Database.MaxAge == next.Database.MaxAge
}

// reconfigureHTTP hands a kept HTTP front what next changes in it: the
// policies bearer tokens choose, and the status page's list.
func reconfigureHTTP(fronts map[string]front, next *serving) {
	if h, ok := fronts[config.ProtoHTTP].(*httpapi.Server); ok {
		h.Reconfigure(identity.NewTokens(next.policies).Policy, slices.Sorted(maps.Keys(next.policies)))
	}
}

// tokenPolicies are the policies a bearer token can choose: in use
// whatever listener serves them, so their roots stay open.
func tokenPolicies(next *serving, inUse map[*policy.Policy]bool) map[*policy.Policy]bool {
	for _, p := range next.policies {
		if len(p.TokensSHA256) > 0 {
			inUse[p] = true
		}
	}
	return inUse
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
