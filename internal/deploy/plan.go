package deploy

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"clamgate/internal/config"

	udiff "github.com/aymanbagabas/go-udiff"
	"github.com/pelletier/go-toml/v2"
)

// Options are the command line's.
type Options struct {
	Root           string // the host tree; "/" in production
	Config         string // a clamgate.toml to install instead of the generated one
	Image          string // "" = UpstreamImage
	AllowMovingTag bool
	// Engine is how clamd runs: KindContainer (podman) or KindUnit
	// (a hardened systemd unit, no container runtime), or KindEdge (none:
	// the pool's); "" = the container where the host has podman, else the
	// unit; the edge variant where Pool (or Config's backends) says so.
	Engine string
	// Pool makes the edge variant: the endpoints (tls:HOST:PORT) of the
	// scanning pool, this host's certificate and key, the pool's CA.
	Pool                      []string
	PoolCert, PoolKey, PoolCA string
}

// Change is one path as it must be: a file's content or a symlink's target.
type Change struct {
	Path    string // host path
	Content []byte // file content, when Link == ""
	Link    string // symlink target ("/dev/null" masks a unit)
	Remove  bool   // the path must not exist (an earlier apply's file that now hides a package's)
	Mode    fs.FileMode
	Why     string
}

// Plan is everything apply would change, and what it chose.
type Plan struct {
	Host    *Host
	Engine  Engine
	Edge    *Edge    // the pool, for the edge variant; nil with a local engine
	Notes   []string // choices and warnings, printed before the diffs
	Changes []Change // only paths whose current state differs, sorted
	Masks   []string // units masked by Changes
	Next    []string // commands to run on the host after apply
	Socket  bool     // clamgate.socket binds listeners for the gateway
}

// Build inspects the tree and computes the changes; it writes nothing.
func Build(opts Options) (*Plan, error) {
	h, err := Inspect(opts.Root)
	if err != nil {
		return nil, err
	}
	edge, err := edgeOf(opts)
	if err != nil {
		return nil, err
	}
	if edge != nil {
		if err := edge.inspect(h); err != nil {
			return nil, err
		}
		return finish(&Plan{Host: h, Engine: Engine{Kind: KindEdge, DBDir: h.DBDir}, Edge: edge}, opts)
	}
	img, err := ParseImage(opts.Image, opts.AllowMovingTag)
	if err != nil {
		return nil, err
	}
	kind, err := engineKind(opts.Engine, h)
	if err != nil {
		return nil, err
	}
	p := &Plan{Host: h, Engine: NewEngine(img, h)}
	if kind == KindUnit {
		p.Engine = NewUnitEngine(h)
	} else if used := h.idRangeUsers(); len(used) > 0 {
		return nil, fmt.Errorf("--engine container maps the container's ids to host ids %d-%d, which this host already uses (%s): free them, or use --engine unit", EngineIDBase, EngineIDBase+engineIDCount-1, strings.Join(used, ", "))
	}
	return finish(p, opts)
}

// finish computes the changes of a plan whose engine is chosen.
func finish(p *Plan, opts Options) (*Plan, error) {
	h := p.Host
	want, err := p.desired(opts)
	if err != nil {
		return nil, err
	}
	for _, c := range want {
		if !upToDate(h.P(c.Path), c) {
			p.Changes = append(p.Changes, c)
			if c.Link == "/dev/null" {
				p.Masks = append(p.Masks, strings.TrimPrefix(c.Path, "/etc/systemd/system/"))
			}
		}
	}
	slices.SortFunc(p.Changes, func(a, b Change) int { return strings.Compare(a.Path, b.Path) })
	p.notes(opts)
	p.Next = nextSteps(p)
	return p, nil
}

func (p *Plan) desired(opts Options) ([]Change, error) {
	h, e := p.Host, p.Engine
	var toml []byte
	switch {
	case opts.Config != "":
		if _, err := readConfig(opts.Config); err != nil {
			return nil, err
		}
		src, err := os.ReadFile(opts.Config)
		if err != nil {
			return nil, err
		}
		toml = src
	case p.Edge != nil:
		toml = []byte(EdgeTOML(h, p.Edge))
	default:
		toml = []byte(GatewayTOML(h, e))
	}
	sockets, err := listening(toml)
	if err != nil {
		return nil, err
	}
	p.Socket = sockets.Any()
	gw, err := p.gatewayUnit(sockets)
	if err != nil {
		return nil, err
	}
	c := []Change{
		gw,
		file(GatewayConf, string(toml), "the gateway's configuration"),
		file(TmpfilesConf, Tmpfiles(h, e), "socket directories and the amavis ACL"),
	}
	if p.Edge == nil {
		c = append(c, file(ClamdConf, e.ClamdConfFile(), "the engine's clamd.conf"))
	}
	if !h.HasSysusers {
		c = append(c, file(SysusersConf, Sysusers(), "the gateway's user"))
	}
	c = append(c, p.engineChanges()...)
	if sockets.Any() {
		c = append(c, file(GatewaySocketUnit, GatewaySocketFile(sockets), "the gateway's listeners, bound and held by systemd across restarts"))
	}
	c = append(c, p.clientChanges()...)
	c = append(c, p.staleCopies()...)
	for _, u := range h.Units {
		c = append(c, Change{Path: "/etc/systemd/system/" + u.Name, Link: "/dev/null", Why: "mask " + u.Name})
	}
	if f := h.Freshclam; p.Edge == nil && f != nil && !f.Enabled && !f.Masked && f.Path != "" {
		c = append(c, Change{Path: "/etc/systemd/system/multi-user.target.wants/" + f.Name, Link: f.Path, Why: "enable " + f.Name})
	}
	return c, nil
}

// gatewayUnit is the full hardened unit, or on a host with the Debian
// package the drop-in that hardens the package's unit as much: writing a
// copy to /etc would hide the package's later versions of it.
func (p *Plan) gatewayUnit(sockets Listening) (Change, error) {
	h := p.Host
	full := GatewayUnitFile(sockets, h.Binary)
	if p.Edge != nil {
		full = EdgeGatewayUnitFile(sockets, h.Binary, p.Edge)
	}
	if h.PackagedUnit == "" {
		return file(GatewayUnit, full, "the gateway, hardened"), nil
	}
	d, err := GatewayDropInFile([]byte(full), h.read(h.PackagedUnit))
	return file(GatewayDropIn, d, "the deployment's additions to the packaged gateway unit"), err
}

// staleCopies are files an earlier apply wrote that now hide the package's:
// its full clamgate.service in /etc. A file without our header is the
// administrator's and stays (the plan warns).
func (p *Plan) staleCopies() []Change {
	h := p.Host
	if h.PackagedUnit == "" || !bytes.HasPrefix(h.read(GatewayUnit), []byte(header)) {
		return nil
	}
	return []Change{{Path: GatewayUnit, Remove: true, Why: "an earlier apply's copy, hiding the packaged unit"}}
}

func (p *Plan) clientChanges() []Change {
	h := p.Host
	var c []Change
	if a := h.Amavis; a != nil && a.ConfDir != "" {
		c = append(c, file(AmavisConfD, AmavisFile(), "amavis scanner entry"))
	} else if a != nil {
		c = append(c, file(a.ConfFile, AmavisEdit(string(h.read(a.ConfFile))), "amavis scanner entry"))
	}
	if h.SquidConf != "" {
		c = append(c, file(SquidSnippet, SquidFile(), "squid ICAP"))
		c = append(c, file(h.SquidConf, SquidEdit(string(h.read(h.SquidConf))), "squid ICAP"))
	}
	if h.PostfixCF != "" {
		c = append(c, file(h.PostfixCF, PostfixEdit(string(h.read(h.PostfixCF)), h.PostfixChroot), "postfix milter"))
	}
	for _, conf := range clamdscanConfs {
		if h.existing(conf) != "" {
			c = append(c, file(conf, ClamdConfEdit(string(h.read(conf))), "clamdscan: LocalSocket at the gateway's host-wide socket"))
		}
	}
	return c
}

func file(path, content, why string) Change {
	return Change{Path: path, Content: []byte(content), Mode: 0o644, Why: why}
}

// upToDate compares the tree with a change; a mode change alone of an
// existing file is not ours to make.
func upToDate(treePath string, c Change) bool {
	fi, err := os.Lstat(treePath)
	if err != nil {
		return c.Remove && errors.Is(err, fs.ErrNotExist)
	}
	if c.Remove {
		return false
	}
	if c.Link != "" {
		t, _ := os.Readlink(treePath)
		return fi.Mode()&fs.ModeSymlink != 0 && t == c.Link
	}
	if !fi.Mode().IsRegular() {
		return false
	}
	cur, err := os.ReadFile(treePath)
	return err == nil && bytes.Equal(cur, c.Content)
}

func (p *Plan) notes(opts Options) {
	h, e := p.Host, p.Engine
	add := func(format string, a ...any) { p.Notes = append(p.Notes, fmt.Sprintf(format, a...)) }
	add("host: %s family; clients detected: %s", h.Family, strings.Join(orNone(ClientsOf(h).Names()), ", "))
	if p.Edge != nil {
		p.edgeNotes(add)
	} else {
		p.engineNotes(opts, add)
		add("database: %s, %d bytes on disk -> MemoryHigh=%dM MemoryMax=%dM", h.DBDir, h.DBBytes, e.Mem.HighMiB, e.Mem.MaxMiB)
	}
	p.unitNotes(add)
	for _, conf := range h.ClamdConf {
		if slices.Contains(clamdscanConfs, conf) {
			add("edited: %s, LocalSocket now %s, for clamdscan (rollback restores it)", conf, LocalSocket)
			continue
		}
		add("left in place: %s (the masked daemons' configuration; rollback needs it)", conf)
	}
	p.packageNotes(add)
	if !h.HasBinary {
		add("note: %s does not exist yet: install clamgate there (or its Debian package, which puts it in %s) before starting clamgate.service", Binary, PackagedBinary)
	}
}

func (p *Plan) packageNotes(add func(string, ...any)) {
	h := p.Host
	if h.PackagedUnit != "" {
		add("gateway: the packaged %s, hardened further by %s", h.PackagedUnit, GatewayDropIn)
		if h.existing(GatewayUnit) != "" && len(p.staleCopies()) == 0 {
			add("WARNING: %s, not written by clamgate deploy, hides the packaged unit; the drop-in applies to it too", GatewayUnit)
		}
	}
	if h.HasSysusers {
		add("user: clamgate, declared by the package in %s", PackagedSysusers)
	}
}

func (p *Plan) engineNotes(opts Options, add func(string, ...any)) {
	h, e := p.Host, p.Engine
	if e.Kind == KindUnit {
		why := "--engine unit"
		if opts.Engine == "" {
			why = "default: no podman on this host"
		}
		add("engine: unit %s (%s): %s runs as %d:%d under systemd's sandbox, no container runtime", path.Base(EngineUnit), why, ClamdBinary, e.UID, e.GID)
		if h.existing(ClamdBinary) == "" {
			add("note: %s does not exist: install clamav-daemon (its own units are masked)", ClamdBinary)
		}
		return
	}
	how := fmt.Sprintf("upstream image: its entrypoint starts as root, so chown dac_override fowner setgid setuid are added back; clamd itself runs as the image's uid 100, host uid %d", e.HostUID())
	if !e.Image.Upstream {
		how = fmt.Sprintf("local image: clamd runs as the image's %d:%d, host %d:%d, with no capability and a read-only root", e.UID, e.GID, e.HostUID(), e.HostGID())
	}
	how += fmt.Sprintf("; a user namespace maps the container's ids to host ids %d-%d, which no host account uses", EngineIDBase, EngineIDBase+engineIDCount-1)
	chosen := "given"
	if opts.Image == "" {
		chosen = "default, the upstream image pinned by digest; without registry access build one with deploy/image/build.sh and pass --image"
	}
	add("image: %s (%s); %s", e.Image.Ref, chosen, how)
	if !e.Image.Pinned {
		add("WARNING: image %s is a moving tag (--allow-moving-tag)", e.Image.Ref)
	}
}

func (p *Plan) unitNotes(add func(string, ...any)) {
	h := p.Host
	for _, u := range h.Units {
		state := "found"
		if u.Masked {
			state = "already masked"
		}
		why := ""
		if len(u.WantedBy) > 0 {
			why = "; wanted by " + strings.Join(u.WantedBy, ", ") + ", so stopping it is not enough: masked (trap 2)"
		}
		add("unit %s: %s%s", u.Name, state, why)
	}
	if p.Edge != nil {
		freshclamEdgeNote(h, add)
		return
	}
	switch f := h.Freshclam; {
	case f == nil:
		add("WARNING: no freshclam unit: nothing will update %s", h.DBDir)
	case f.Masked:
		add("WARNING: %s is masked: the database will go stale; unmask and enable it", f.Name)
	case f.Enabled:
		add("freshclam: %s enabled, kept", f.Name)
	default:
		add("freshclam: %s not enabled: enabling it", f.Name)
	}
}

func orNone(s []string) []string {
	if len(s) == 0 {
		return []string{"none"}
	}
	return s
}

func nextSteps(p *Plan) []string {
	var s []string
	for _, c := range Activation(p) {
		s = append(s, strings.Join(c, " "))
	}
	return s
}

// Write prints the plan: notes, then every change as a unified diff
// (new files from /dev/null) or a symlink line.
func (p *Plan) Write(w io.Writer) error {
	var b strings.Builder
	for _, n := range p.Notes {
		b.WriteString("# " + n + "\n")
	}
	if len(p.Changes) == 0 {
		b.WriteString("nothing to change\n")
	}
	for _, c := range p.Changes {
		if err := p.writeChange(&b, c); err != nil {
			return err
		}
	}
	if len(p.Masks) > 0 {
		b.WriteString("units masked: " + strings.Join(p.Masks, " ") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (p *Plan) writeChange(b *strings.Builder, c Change) error {
	tp := p.Host.P(c.Path)
	fi, err := os.Lstat(tp)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if c.Link != "" {
		was := "absent"
		if exists {
			was = describe(tp, fi)
		}
		fmt.Fprintf(b, "symlink %s -> %s (%s; was %s)\n", c.Path, c.Link, c.Why, was)
		return nil
	}
	var old []byte
	from, to := "/dev/null", c.Path
	if exists && fi.Mode().IsRegular() {
		old, _ = os.ReadFile(tp)
		from = c.Path
	}
	if c.Remove {
		to = "/dev/null"
		fmt.Fprintf(b, "remove %s (%s)\n", c.Path, c.Why)
	}
	b.WriteString(udiff.Unified(from, to, string(old), string(c.Content)))
	return nil
}

func describe(tp string, fi fs.FileInfo) string {
	if fi.Mode()&fs.ModeSymlink != 0 {
		t, _ := os.Readlink(tp)
		return "a symlink to " + t
	}
	return "a file"
}

// listening is what clamgate.socket binds of the gateway's configuration:
// its TCP listeners and metrics endpoint, and the unix listeners that name
// no owner or group (theirs is their directory's) and share the first
// one's mode (SocketMode= is one per unit). The others, and tls:
// listeners, the gateway binds itself.
func listening(src []byte) (Listening, error) {
	var f struct {
		Listener []struct {
			Address, Owner, Group string
			Mode                  config.Mode
		} `toml:"listener"`
		Server struct{ HTTP string } `toml:"server"`
	}
	if err := toml.Unmarshal(src, &f); err != nil {
		return Listening{}, fmt.Errorf("reading the gateway's listeners: %w", err)
	}
	var l Listening
	tcp := func(a string) {
		if rest, ok := strings.CutPrefix(a, "tcp:"); ok {
			l.TCP = append(l.TCP, rest)
		}
	}
	for _, s := range f.Listener {
		tcp(s.Address)
		path, ok := strings.CutPrefix(s.Address, "unix:")
		if !ok || s.Owner != "" || s.Group != "" {
			continue
		}
		mode := fmt.Sprintf("%04o", cmp.Or(s.Mode, 0o660)) // the listener's default
		if l.Mode == "" {
			l.Mode = mode
		}
		if mode == l.Mode {
			l.Unix = append(l.Unix, path)
		}
	}
	tcp(f.Server.HTTP)
	return l, nil
}
