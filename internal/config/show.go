package config

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"time"

	"clamgate/internal/policy"
	"clamgate/internal/scan"
	"clamgate/internal/tlsid"

	"github.com/pelletier/go-toml/v2"
)

// Show renders the effective configuration in the file's own shape, with
// every default filled in and nothing that is not a value: a key whose
// value is "none" or "derived from another key" (an unset fallback, the
// fronts' limits that follow their policy's max_stream, the managed
// engine's database and user, which the engine chooses at start) is left
// out rather than shown as an empty string or a zero, so that `clamgate
// config show` answers "what will the gateway actually do" and its output
// is itself a valid file that loads to the same configuration (TestShowRoundTrip holds it to that).
func (c *Config) Show() ([]byte, error) {
	var buf bytes.Buffer
	enc := toml.NewEncoder(&buf)
	enc.SetIndentTables(true)
	if err := enc.Encode(c.asFile()); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (c *Config) asFile() *file {
	f := &file{
		Backend:  c.backendSection(),
		Engine:   c.engineSection(),
		Server:   c.serverSection(),
		Policy:   map[string]policySection{},
		Database: c.databaseSection(),
		ICAP:     c.icapSection(),
		Milter:   c.milterSection(),
	}
	for _, l := range c.Listeners {
		f.Listener = append(f.Listener, listenerSectionOf(l))
	}
	for _, name := range slices.Sorted(maps.Keys(c.Policies)) {
		f.Policy[name] = policySectionOf(c.Policies[name])
	}
	return f
}

func (c *Config) backendSection() backendSection {
	b := backendSection{
		Fallback:        c.Fallback,
		HealthInterval:  Duration(c.HealthInterval),
		DownWait:        Duration(c.BackendDownWait),
		MaxJobs:         c.MaxJobs,
		BulkCap:         c.BulkCap,
		Cgroup:          c.EngineCgroup,
		SpoolDir:        cmp.Or(c.SpoolDir, os.TempDir()),
		Reserve:         &c.Reserve,
		Timeout:         Duration(c.BackendTimeout),
		StreamMaxLength: Size(c.StreamMaxLength),
		BulkSize:        Size(cmp.Or(c.BulkSize, scan.DefaultBulkSize)),
	}
	b.TLSCert, b.TLSKey, b.TLSCA, b.TLSMinVersion = c.BackendTLS.Cert, c.BackendTLS.Key, c.BackendTLS.CA, c.BackendTLS.MinVersion
	if c.Engine == nil { // a managed clamd's limit is the engine's key
		b.Address = c.Backends
	} else {
		b.StreamMaxLength = 0
	}
	return b
}

func (c *Config) engineSection() *engineSection {
	e := c.Engine
	if e == nil {
		return nil
	}
	// max_threads and stream_max_length follow backend.max_jobs and the
	// policies' max_object: shown there.
	return &engineSection{Clamd: e.Clamd, StateDir: e.StateDir, Database: e.Database, User: e.User, Unit: e.Unit}
}

func (c *Config) serverSection() serverSection {
	return serverSection{ReadTimeout: Duration(c.ReadTimeout), CommandTimeout: Duration(c.CommandTimeout),
		StreamTimeout: Duration(c.StreamTimeout), ShutdownGrace: Duration(c.ShutdownGrace),
		LogLevel: c.LogLevel, LogFormat: c.LogFormat, Audit: &c.Audit, HTTP: c.HTTP,
		HTTPAllowNonLoopback: c.HTTPAllowNonLoopback, HTTPMaxConnections: c.HTTPMaxConnections, SpoolBudget: Size(c.SpoolBudget),
		CacheEntries: &c.CacheEntries, CacheBytes: Size(c.CacheBytes)}
}

func (c *Config) databaseSection() databaseSection {
	d := c.Database
	return databaseSection{Dir: d.Dir, Watch: &d.Watch, Reload: d.Reload, Settle: Duration(d.Settle), MaxAge: Duration(d.MaxAge),
		Stagger: d.Stagger, StaggerLease: d.StaggerLease, StaggerWait: Duration(d.StaggerWait),
		StaggerUnready: Duration(d.StaggerUnready), StaggerCredentials: d.StaggerCredentials}
}

func (c *Config) icapSection() icapSection {
	i := c.ICAP
	return icapSection{Service: i.Service, Preview: &i.Preview, MaxObject: Size(i.MaxObject), OverLimit: i.OverLimit,
		OnFailure: i.OnFailure, OptionsTTL: Duration(i.OptionsTTL), MaxConnections: i.MaxConnections,
		TransferPreview: &i.TransferPreview, TransferIgnore: i.TransferIgnore, TransferComplete: i.TransferComplete,
		SpoolDir: cmp.Or(i.SpoolDir, os.TempDir()), RequestTimeout: Duration(i.RequestTimeout)}
}

func (c *Config) milterSection() milterSection {
	m := c.Milter
	return milterSection{OnInfected: m.OnInfected, OnFailure: m.OnFailure, RejectMessage: m.RejectMessage,
		AddHeader: m.AddHeader, MaxSize: Size(m.MaxSize), OverLimit: m.OverLimit}
}

func listenerSectionOf(l Listener) listenerSection {
	s := listenerSection{Address: l.Address, Policy: l.Policy, Protocol: l.Protocol, Mode: Mode(l.Mode),
		AllowNonLoopback: l.AllowNonLoopback, MaxConnections: l.MaxConnections, MaxPerUID: l.MaxPerUID}
	if l.TLS != (tlsid.Files{}) {
		s.TLSCert, s.TLSKey, s.TLSClientCA, s.TLSMinVersion = l.TLS.Cert, l.TLS.Key, l.TLS.CA, l.TLS.MinVersion
		s.AllowNonLoopback = false // derived from the client CA or the policy, not written
	}
	if len(l.Policies) > 1 {
		s.Policy, s.Policies = "", l.Policies
	}
	s.Owner, s.Group = l.Owner, l.Group
	return s
}

func policySectionOf(p *Policy) policySection {
	s := policySection{Admin: p.Admin, Commands: p.Commands, Roots: p.Roots, MaxObject: Size(p.MaxObject),
		MaxConcurrent: p.MaxConcurrent, MaxWait: Duration(cmp.Or(p.MaxWait, scan.DefaultMaxWait)),
		MaxQueue: cmp.Or(p.MaxQueue, scan.DefaultMaxQueue), Weight: cmp.Or(p.Weight, 1),
		MaxQueueBytes: Size(p.MaxQueueBytes), AllowWritableRootAncestors: p.AllowWritableRootAncestors,
		OnLimits: p.OnLimits, TLSIdentities: p.TLSIdentities, AllowAnonymousNetwork: p.AllowAnonymousNetwork,
		Users: p.Users, Groups: p.Groups, Status: p.Status}
	for _, h := range p.TokensSHA256 { // hashes, not secrets: the file holds them as they are
		s.TokensSHA256 = append(s.TokensSHA256, hex.EncodeToString(h[:]))
	}
	s.MaxWalkDepth = cmp.Or(p.MaxWalkDepth, policy.DefaultMaxWalkDepth)
	s.MaxDirEntries = cmp.Or(p.MaxDirEntries, policy.DefaultMaxDirEntries)
	return s
}

// MarshalText writes a duration the way the file takes it ("2m0s").
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// MarshalText writes a size in the largest unit that divides it exactly.
func (s Size) MarshalText() ([]byte, error) {
	n := int64(s)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return []byte(strconv.FormatInt(n/u.mult, 10) + u.suffix), nil
		}
	}
	return []byte(strconv.FormatInt(n, 10)), nil
}

// MarshalText writes a mode in octal with its leading zero.
func (m Mode) MarshalText() ([]byte, error) { return []byte(fmt.Sprintf("%04o", uint32(m))), nil }
