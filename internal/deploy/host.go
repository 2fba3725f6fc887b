package deploy

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"clamgate/internal/sigdb"
)

// unitDirs are searched in systemd's order of precedence; on a merged-/usr
// host /lib is /usr/lib and a unit is found twice, which is harmless.
var unitDirs = []string{"/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"}

// replacedUnits are the daemons one clamd behind clamgate replaces.
// clamav-daemon.socket is included because socket activation would start
// clamav-daemon.service again at the first connection to its old socket.
var replacedUnits = []string{"clamav-daemon.service", "clamav-daemon.socket", "clamav-milter.service", "c-icap.service"}

// Unit is a systemd unit found on the host.
type Unit struct {
	Name     string
	Path     string   // unit file (or init script) it comes from; "" for a template instance
	Masked   bool     // /etc/systemd/system/NAME -> /dev/null
	Enabled  bool     // a *.wants/ symlink names it
	WantedBy []string // units whose Wants=/Requires= name it (the article's trap 2)
}

// Amavis is amavisd-new's configuration.
type Amavis struct {
	ConfDir  string // Debian: /etc/amavis/conf.d, where a file of ours is read last
	ConfFile string // Rocky/RHEL: /etc/amavisd/amavisd.conf, edited between markers
	TmpDir   string // $TEMPBASE: where amavis puts the parts it asks to scan
}

// Host is what Inspect found under Root.
type Host struct {
	Root               string
	Family             string // "debian" or "rhel"
	Units              []Unit // the clamd units to replace, sorted by name
	Freshclam          *Unit  // the freshclam unit, nil if freshclam is not installed
	ClamdConf          []string
	DBDir              string
	DBBytes            int64 // size of the signature files on disk
	Amavis             *Amavis
	PostfixCF          string // main.cf, "" without postfix
	PostfixChroot      bool
	SquidConf          string // squid.conf, "" without squid
	ClamdUID, ClamdGID int    // the host's clamav user: the local image's clamd runs as it
	ClamdUser          string // its name
	// Binary is the clamgate the units run: the packaged one when the
	// Debian package is installed, else Binary; HasBinary tells whether it
	// exists yet.
	Binary        string
	HasBinary     bool
	PackagedUnit  string // the package's clamgate.service, "" without the package
	HasSysusers   bool   // the package declares the clamgate user (PackagedSysusers)
	HasPodman     bool   // /usr/bin/podman exists: the container engine is the default
	AppArmorClamd string // clamd's AppArmor profile, "" without one
}

// Inspect reads the host tree under root; it never writes.
func Inspect(root string) (*Host, error) {
	h := &Host{Root: root, DBDir: "/var/lib/clamav", ClamdUID: -1, ClamdGID: -1}
	h.Family = osFamily(h.read("/etc/os-release"))
	units, err := h.findUnits()
	if err != nil {
		return nil, err
	}
	h.Units = units
	h.Freshclam = h.freshclam()
	h.ClamdConf = h.glob("/etc/clamav/*.conf", "/etc/clamd.d/*.conf", "/etc/clamd.conf")
	h.DBBytes = h.dbSize()
	h.Amavis = h.amavis()
	h.PostfixCF = h.existing("/etc/postfix/main.cf")
	h.PostfixChroot = smtpdChrooted(h.read("/etc/postfix/master.cf"))
	h.SquidConf = h.existing("/etc/squid/squid.conf")
	for _, name := range []string{"clamav", "clamscan"} { // RHEL's clamd runs as clamscan
		if h.ClamdUID, h.ClamdGID = passwdIDs(h.read("/etc/passwd"), name); h.ClamdUID >= 0 {
			h.ClamdUser = name
			break
		}
	}
	h.Binary = Binary
	if h.existing(PackagedBinary) != "" {
		h.Binary = PackagedBinary
	}
	h.HasBinary = h.existing(h.Binary) != ""
	for _, d := range packagedUnitDirs {
		if h.PackagedUnit == "" {
			h.PackagedUnit = h.existing(path.Join(d, packagedUnitName))
		}
	}
	h.HasSysusers = h.existing(PackagedSysusers) != ""
	h.HasPodman = h.existing("/usr/bin/podman") != ""
	h.AppArmorClamd = h.existing(AppArmorProfile)
	return h, nil
}

// P maps a host path into the tree.
func (h *Host) P(p string) string { return filepath.Join(h.Root, p) }

func (h *Host) read(p string) []byte {
	b, _ := os.ReadFile(h.P(p))
	return b
}

func (h *Host) existing(p string) string {
	if _, err := os.Stat(h.P(p)); err == nil {
		return p
	}
	return ""
}

// glob returns host paths (not tree paths), sorted.
func (h *Host) glob(patterns ...string) []string {
	var out []string
	for _, pat := range patterns {
		m, _ := filepath.Glob(h.P(pat))
		for _, f := range m {
			out = append(out, "/"+strings.TrimPrefix(strings.TrimPrefix(f, h.Root), "/"))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

var rhelRE = regexp.MustCompile(`\b(rhel|fedora|centos|rocky|almalinux)\b`)

func osFamily(osRelease []byte) string {
	for _, line := range strings.Split(string(osRelease), "\n") {
		k, v, _ := strings.Cut(line, "=")
		v = strings.Trim(v, `"`)
		if (k == "ID" || k == "ID_LIKE") && rhelRE.MatchString(v) {
			return "rhel"
		}
	}
	return "debian"
}

var unitRef = regexp.MustCompile(`clamd@[A-Za-z0-9_.-]+\.service`)

// findUnits lists the replaced units that exist, and the clamd@ instances
// that something enables, wants, or that have a clamd.d configuration.
func (h *Host) findUnits() ([]Unit, error) {
	found := map[string]*Unit{}
	add := func(name, from string) *Unit {
		u := found[name]
		if u == nil {
			u = &Unit{Name: name}
			found[name] = u
		}
		if u.Path == "" && from != "" {
			u.Path = from
		}
		return u
	}
	for _, name := range replacedUnits {
		if p := h.unitFile(name); p != "" {
			add(name, p)
		}
	}
	if h.existing("/etc/init.d/clamav-milter") != "" { // Debian ships only a SysV script, systemd wraps it
		add("clamav-milter.service", "/etc/init.d/clamav-milter")
	}
	for _, c := range h.glob("/etc/clamd.d/*.conf") {
		if name := strings.TrimSuffix(path.Base(c), ".conf"); h.unitFile("clamd@.service") != "" {
			add("clamd@"+name+".service", "")
		}
	}
	if err := h.scanUnitFiles(add); err != nil {
		return nil, err
	}
	h.markState(found)
	var out []Unit
	for _, u := range found {
		slices.Sort(u.WantedBy)
		u.WantedBy = slices.Compact(u.WantedBy)
		out = append(out, *u)
	}
	slices.SortFunc(out, func(a, b Unit) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// scanUnitFiles finds clamd@ instances named by other units' dependencies
// and by *.wants/ symlinks.
func (h *Host) scanUnitFiles(add func(name, from string) *Unit) error {
	for _, dir := range unitDirs {
		err := filepath.WalkDir(h.P(dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if d.IsDir() {
				return nil
			}
			if strings.HasSuffix(filepath.Dir(p), ".wants") || strings.HasSuffix(filepath.Dir(p), ".requires") {
				if unitRef.MatchString(d.Name()) {
					add(d.Name(), "")
				}
				return nil
			}
			if d.Type()&fs.ModeSymlink != 0 {
				return nil
			}
			for _, ref := range dependencies(h.readTree(p)) {
				u := add(ref, "")
				u.WantedBy = append(u.WantedBy, unitOf(p))
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// unitOf names the unit a file configures: a drop-in (amavis.service.d/x.conf)
// configures amavis.service, not "x.conf".
func unitOf(p string) string {
	if dir := filepath.Base(filepath.Dir(p)); strings.HasSuffix(dir, ".d") {
		return strings.TrimSuffix(dir, ".d")
	}
	return filepath.Base(p)
}

func (h *Host) readTree(p string) []byte {
	b, _ := os.ReadFile(p)
	return b
}

// dependencies returns the clamd@ instances a unit file pulls in.
func dependencies(unit []byte) []string {
	deps, _ := UnitDependencies(unit)
	var out []string
	for _, d := range deps {
		out = append(out, unitRef.FindAllString(d.Unit, -1)...)
	}
	return out
}

// unitFile is the file a unit is loaded from; template instances load the template.
func (h *Host) unitFile(name string) string {
	for _, dir := range unitDirs {
		p := path.Join(dir, name)
		if fi, err := os.Lstat(h.P(p)); err == nil && !isMaskLink(h.P(p), fi) {
			return p
		}
	}
	return ""
}

func isMaskLink(p string, fi fs.FileInfo) bool {
	if fi.Mode()&fs.ModeSymlink == 0 {
		return false
	}
	t, _ := os.Readlink(p)
	return t == "/dev/null"
}

func (h *Host) markState(found map[string]*Unit) {
	for name, u := range found {
		u.Masked, u.Enabled = h.masked(name), h.enabled(name)
		if u.Path == "" && strings.HasPrefix(name, "clamd@") {
			u.Path = h.unitFile("clamd@.service")
		}
	}
}

func (h *Host) masked(name string) bool {
	p := h.P("/etc/systemd/system/" + name)
	fi, err := os.Lstat(p)
	return err == nil && isMaskLink(p, fi)
}

func (h *Host) enabled(name string) bool {
	return len(h.glob("/etc/systemd/system/*.wants/"+name)) > 0
}

func (h *Host) freshclam() *Unit {
	for _, name := range []string{"clamav-freshclam.service", "clamd-freshclam.service"} {
		p, masked := h.unitFile(name), h.masked(name)
		if p != "" || masked {
			return &Unit{Name: name, Path: p, Masked: masked, Enabled: h.enabled(name)}
		}
	}
	return nil
}

// dbSize sums the signature files; freshclam's tmp.* downloads are not the database.
func (h *Host) dbSize() int64 { return sigdb.DiskBytes(h.P(h.DBDir)) }

var (
	myHomeRE   = regexp.MustCompile(`(?m)^\s*\$MYHOME\s*=\s*['"]([^'"]+)['"]`)
	tempBaseRE = regexp.MustCompile(`(?m)^\s*\$TEMPBASE\s*=\s*['"]([^'"]+)['"]`)
)

func (h *Host) amavis() *Amavis {
	a := &Amavis{}
	var files []string
	switch {
	case h.existing("/etc/amavis/conf.d") != "":
		a.ConfDir = "/etc/amavis/conf.d"
		files = h.glob("/etc/amavis/conf.d/*")
	case h.existing("/etc/amavisd/amavisd.conf") != "":
		a.ConfFile = "/etc/amavisd/amavisd.conf"
		files = []string{a.ConfFile}
	case h.existing("/etc/amavisd.conf") != "":
		a.ConfFile = "/etc/amavisd.conf"
		files = []string{a.ConfFile}
	default:
		return nil
	}
	home, temp := "/var/lib/amavis", "$MYHOME/tmp"
	if h.Family == "rhel" {
		home = "/var/spool/amavisd"
	}
	for _, f := range files { // later files override earlier ones, as in amavisd
		src := h.read(f)
		if m := myHomeRE.FindSubmatch(src); m != nil {
			home = string(m[1])
		}
		if m := tempBaseRE.FindSubmatch(src); m != nil {
			temp = string(m[1])
		}
	}
	a.TmpDir = path.Clean(strings.ReplaceAll(temp, "$MYHOME", home))
	return a
}

// smtpdChrooted tells whether master.cf runs smtpd chrooted, which
// changes how main.cf must name the milter socket. "-" means no since
// Postfix 3.0.
func smtpdChrooted(master []byte) bool {
	for _, line := range strings.Split(string(master), "\n") {
		f := strings.Fields(line)
		if len(f) >= 8 && !strings.HasPrefix(f[0], "#") && f[7] == "smtpd" && f[1] == "inet" {
			return f[4] == "y"
		}
	}
	return false
}

func passwdIDs(passwd []byte, name string) (int, int) {
	for _, line := range strings.Split(string(passwd), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 4 && f[0] == name {
			uid, err1 := strconv.Atoi(f[2])
			gid, err2 := strconv.Atoi(f[3])
			if err1 == nil && err2 == nil {
				return uid, gid
			}
		}
	}
	return -1, -1
}
