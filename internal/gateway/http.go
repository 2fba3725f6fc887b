package gateway

import (
	"log/slog"

	"clamgate/internal/config"
	"clamgate/internal/httpapi"
	"clamgate/internal/identity"
	"clamgate/internal/scan"
)

// newHTTPFront is the HTTP front of cfg. Which policy a bearer token
// chooses is identity's decision, made here and handed to the front as a
// lookup (the front never imports internal/identity).
func newHTTPFront(cfg *config.Config, log *slog.Logger, d *scan.Dispatcher) *httpapi.Server {
	return &httpapi.Server{Dispatcher: d, Log: log, Tokens: identity.NewTokens(cfg.Policies).Policy,
		ReadTimeout: cfg.ReadTimeout, RequestTimeout: cfg.StreamTimeout, StaleAfter: cfg.Database.MaxAge}
}
