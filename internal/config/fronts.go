package config

import (
	"slices"
	"strings"
	"time"
)

// Listener protocols.
const (
	ProtoClamd  = "clamd"
	ProtoICAP   = "icap"
	ProtoMilter = "milter"
)

// ICAP configures the ICAP service squid (or any ICAP client) talks to.
type ICAP struct {
	Service          string        // path of the service URL: icap://host:port/SERVICE
	Preview          int           // bytes of preview asked of clients in OPTIONS; 0 = no preview
	MaxObject        int64         // largest body scanned; 0 = the listener policy's max_object (deprecated key)
	OverLimit        string        // "block" or "pass" for bodies over MaxObject
	OnFailure        string        // "error" (ICAP 500), "block" (403 page) or "pass"
	OptionsTTL       time.Duration // how long clients may cache OPTIONS
	MaxConnections   int           // per listener; more get ICAP 503
	RequestTimeout   time.Duration // total wait for one request's bytes, headers to last chunk
	TransferPreview  string        // OPTIONS Transfer-Preview list
	TransferIgnore   string        // OPTIONS Transfer-Ignore list ("" = scan every type)
	TransferComplete string        // OPTIONS Transfer-Complete list
	SpoolDir         string        // where bodies wait when they must be echoed back
}

// Milter configures the mail filter postfix or sendmail talks to.
type Milter struct {
	OnInfected    string // reject, discard, quarantine, pass
	OnFailure     string // tempfail, reject, discard, quarantine, pass
	RejectMessage string // SMTP text; %v is the threat name
	AddHeader     bool   // X-Virus-Scanned and X-Virus-Status
	MaxSize       int64  // largest message scanned; 0 = the listener policy's max_object (deprecated key)
	OverLimit     string // pass, tempfail, reject
}

type icapSection struct {
	Service          string   `toml:"service"`
	Preview          *int     `toml:"preview"`
	MaxObject        Size     `toml:"max_object,omitempty"`
	OverLimit        string   `toml:"over_limit"`
	OnFailure        string   `toml:"on_failure"`
	OptionsTTL       Duration `toml:"options_ttl"`
	MaxConnections   int      `toml:"max_connections"`
	RequestTimeout   Duration `toml:"request_timeout"`
	TransferPreview  *string  `toml:"transfer_preview"`
	TransferIgnore   string   `toml:"transfer_ignore,omitempty"`
	TransferComplete string   `toml:"transfer_complete,omitempty"`
	SpoolDir         string   `toml:"spool_dir"`
}

type milterSection struct {
	OnInfected    string `toml:"on_infected"`
	OnFailure     string `toml:"on_failure"`
	RejectMessage string `toml:"reject_message"`
	AddHeader     bool   `toml:"add_header"`
	MaxSize       Size   `toml:"max_size,omitempty"`
	OverLimit     string `toml:"over_limit"`
}

// Defaults of the protocol fronts.
const (
	DefaultICAPService = "avscan"
	// No preview by default: a virus scan needs the whole body anyway, so a
	// preview only adds a round trip, and squid 5.7 (Debian 12) stalls a
	// RESPMOD for good when the origin fills its 64 KiB buffer during that
	// round trip (squid bug 5352).
	DefaultICAPPreview     = 0
	DefaultOptionsTTL      = time.Hour
	DefaultICAPConnections = 100
	// A browser gives up waiting for a response's first byte after 300 s
	// (Firefox), and squid sends none before the ICAP verdict: a body that
	// takes longer to arrive is not worth holding a connection for.
	DefaultICAPRequestTimeout = 5 * time.Minute
	DefaultRejectMessage      = "Message rejected: virus found: %v"
)

func (v *validator) icap(s icapSection) ICAP {
	c := ICAP{
		Service:          or(s.Service, DefaultICAPService),
		Preview:          DefaultICAPPreview,
		MaxObject:        int64(s.MaxObject),
		OverLimit:        or(s.OverLimit, "block"),
		OnFailure:        or(s.OnFailure, "error"),
		OptionsTTL:       s.OptionsTTL.Or(DefaultOptionsTTL),
		MaxConnections:   s.MaxConnections,
		RequestTimeout:   s.RequestTimeout.Or(DefaultICAPRequestTimeout),
		TransferPreview:  "*",
		TransferIgnore:   s.TransferIgnore,
		TransferComplete: s.TransferComplete,
		SpoolDir:         s.SpoolDir,
	}
	if s.Preview != nil {
		c.Preview = *s.Preview
	}
	if s.TransferPreview != nil {
		c.TransferPreview = *s.TransferPreview
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultICAPConnections
	}
	if strings.ContainsAny(c.Service, "/?# \t") {
		v.fail("icap.service", "%q: a service name is one path segment, like avscan", c.Service)
	}
	if c.Preview < 0 || c.Preview > 1<<20 {
		v.fail("icap.preview", "%d is outside 0..1048576", c.Preview)
	}
	if c.MaxObject != 0 {
		v.renamed("icap.max_object", "icap.max_object", "max_object in the ICAP listener's policy")
	}
	v.oneOf("icap.over_limit", c.OverLimit, "block", "pass")
	v.oneOf("icap.on_failure", c.OnFailure, "error", "block", "pass")
	if c.MaxConnections < 0 {
		v.fail("icap.max_connections", "must not be negative")
	}
	return c
}

func (v *validator) milter(s milterSection) Milter {
	c := Milter{
		OnInfected:    or(s.OnInfected, "reject"),
		OnFailure:     or(s.OnFailure, "tempfail"),
		RejectMessage: or(s.RejectMessage, DefaultRejectMessage),
		AddHeader:     s.AddHeader,
		MaxSize:       int64(s.MaxSize),
		OverLimit:     or(s.OverLimit, "reject"),
	}
	v.passValue("milter.on_infected", &c.OnInfected)
	v.passValue("milter.on_failure", &c.OnFailure)
	v.passValue("milter.over_limit", &c.OverLimit)
	if c.MaxSize != 0 {
		v.renamed("milter.max_size", "milter.max_size", "max_object in the milter listener's policy")
	}
	v.oneOf("milter.on_infected", c.OnInfected, "reject", "discard", "quarantine", "pass")
	v.oneOf("milter.on_failure", c.OnFailure, "tempfail", "reject", "discard", "quarantine", "pass")
	v.oneOf("milter.over_limit", c.OverLimit, "pass", "tempfail", "reject")
	return c
}

func (v *validator) oneOf(key, val string, allowed ...string) {
	if !slices.Contains(allowed, val) {
		v.fail(key, "%q is not one of %s", val, strings.Join(allowed, ", "))
	}
}

// checkFrontLimits refuses a size limit a listener's policy could never
// honour: the scan would fail on the policy's max_object instead.
func (v *validator) checkFrontLimits(cfg *Config) {
	for _, l := range cfg.Listeners {
		p := cfg.Policies[l.Policy]
		if p == nil {
			continue
		}
		if l.Protocol == ProtoICAP && cfg.ICAP.MaxObject > p.MaxObject {
			v.fail("icap.max_object", "%d bytes is more than policy %q scans (max_object %d)", cfg.ICAP.MaxObject, p.Name, p.MaxObject)
		}
		if l.Protocol == ProtoMilter && cfg.Milter.MaxSize > p.MaxObject {
			v.fail("milter.max_size", "%d bytes is more than policy %q scans (max_object %d)", cfg.Milter.MaxSize, p.Name, p.MaxObject)
		}
	}
}
