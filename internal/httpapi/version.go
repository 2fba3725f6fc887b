package httpapi

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"clamgate/internal/scan"
)

// Version is clamd's VERSION reply, read.
type Version struct {
	Engine   string    `json:"engine"`        // "ClamAV 1.4.3"
	Database string    `json:"database"`      // the daily database's version
	Built    time.Time `json:"database_time"` // when it was built
	Age      int64     `json:"database_age_seconds"`
	Stale    bool      `json:"stale"`
}

// versionTTL is how long a VERSION reply is reused: every scan's answer
// names the database, and asking clamd each time would double the
// requests it serves. A reload shows within that time.
const versionTTL = 10 * time.Second

type versionCache struct {
	mu   sync.Mutex
	at   time.Time
	last Version
}

var errNoVersion = errors.New("clamd's VERSION reply could not be read")

// ParseVersion reads "ClamAV 1.4.3/27000/Sat Dec  5 10:00:00 2026", or
// "ClamAV 1.4.3" alone when clamd has no daily database (a database of
// local signatures only, such as the tests' and the built-in test one).
func ParseVersion(reply string) (Version, error) {
	if !strings.HasPrefix(reply, "ClamAV ") || strings.ContainsAny(reply, "\n\x00") {
		return Version{}, errNoVersion
	}
	parts := strings.SplitN(reply, "/", 3)
	if len(parts) == 1 {
		return Version{Engine: reply}, nil
	}
	if len(parts) != 3 {
		return Version{}, errNoVersion
	}
	v := Version{Engine: parts[0], Database: parts[1]}
	if t, err := time.Parse(time.ANSIC, parts[2]); err == nil {
		v.Built = t.UTC()
	}
	return v, nil
}

// currentVersion asks clamd, or reuses an answer younger than versionTTL.
func (s *Server) currentVersion(ctx context.Context) (Version, error) {
	s.version.mu.Lock()
	defer s.version.mu.Unlock()
	if time.Since(s.version.at) > versionTTL {
		res, err := s.Dispatcher.Do(ctx, scan.Job{Client: "http", Protocol: "http", Kind: scan.Command, Command: "VERSION", Object: "VERSION"})
		if err != nil {
			return Version{}, err
		}
		v, err := ParseVersion(strings.TrimSpace(res.Reply))
		if err != nil {
			return Version{}, err
		}
		s.version.last, s.version.at = v, time.Now()
	}
	v := s.version.last
	if !v.Built.IsZero() {
		age := time.Since(v.Built)
		v.Age = int64(age / time.Second)
		v.Stale = s.StaleAfter > 0 && age > s.StaleAfter
	}
	return v, nil
}

// databaseVersion names the database for a scan's answer; "" when clamd
// did not say.
func (s *Server) databaseVersion(ctx context.Context) string {
	v, err := s.currentVersion(ctx)
	if err != nil {
		return ""
	}
	return v.Database
}
