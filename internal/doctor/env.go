package doctor

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"clamgate/internal/config"
	"clamgate/internal/deploy"
)

// Where doctor looks by default. The configuration and the Quadlet are
// deploy's own constants, so that the two cannot drift apart;
// units are named, not located, since systemd may load them from any
// unit directory.
const (
	DefaultConfig    = deploy.GatewayConf
	GatewayUnit      = "clamgate.service"
	ClamdQuadlet     = deploy.QuadletFile
	ClamdPlainUnit   = "clamgate-clamd.service"
	DefaultDatabase  = "/var/lib/clamav"
	FreshclamUnit    = "clamav-freshclam.service"
	defaultTimeout   = 5 * time.Second
	clamdPort        = 3310
	icapPort         = 1344
	clamavMilterPort = 7357 // the port clamav-milter's and clamgate's examples use
)

// Env is everything a check may look at.
type Env struct {
	Proc string // the proc file system, normally /proc
	Sys  string // the sys file system, normally /sys
	Root string // where /etc, /lib, /usr/lib and /var are: / or a --root tree
	// Offline means Root is a tree, not the running host: only the checks
	// that read files run.
	Offline bool
	Now     time.Time

	ConfigPath string         // shown in messages; already under Root
	Config     *config.Config // nil when absent or invalid
	ConfigErr  error          // why Config is nil, if it exists but is invalid
	DBDir      string         // "" = the config's, else /var/lib/clamav (under Root)

	// Ports are the TCP ports whose listeners are examined whoever owns
	// them (the config's TCP listeners are added).
	Ports []int
	// Only restricts every process check to some processes; nil = all.
	// Tests use it so that other clamd processes on the machine do not
	// change what they measure.
	Only func(pid int) bool
	// Select restricts the run to some check ids; nil = all.
	Select func(id string) bool

	Dial    func(ctx context.Context, network, address string) (net.Conn, error)
	Probe   Prober
	Analyze func(ctx context.Context, unitPath string) (string, error)
	Timeout time.Duration
}

// HostEnv is the environment of the machine doctor runs on, or with root
// other than "/" of a tree checked offline.
func HostEnv(root string) *Env {
	if root == "" {
		root = "/"
	}
	return &Env{
		Proc: "/proc", Sys: "/sys", Root: root, Offline: filepath.Clean(root) != "/",
		Now:     time.Now(),
		Ports:   []int{clamdPort, icapPort, clamavMilterPort},
		Dial:    (&net.Dialer{}).DialContext,
		Probe:   ExecProber{Argv: []string{"/proc/self/exe", "doctor", ProbeArg}},
		Analyze: systemdAnalyze,
		Timeout: defaultTimeout,
	}
}

// LoadConfig reads the gateway's configuration; a missing file is not an
// error (the config check reports it), an invalid one is kept in ConfigErr.
func (e *Env) LoadConfig(path string) {
	e.ConfigPath = path
	if !exists(path) {
		return
	}
	e.Config, e.ConfigErr = config.Load(path)
}

// systemdAnalyze scores a unit file without a running systemd, which is
// also how it works on a tree: the file is named by its path.
func systemdAnalyze(ctx context.Context, unit string) (string, error) {
	cmd := exec.CommandContext(ctx, "systemd-analyze", "security", "--offline=true", "--no-pager", unit)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// path returns an absolute host path inside Root.
func (e *Env) path(p string) string {
	return filepath.Join(e.Root, p)
}

func (e *Env) proc(parts ...string) string {
	return filepath.Join(append([]string{e.Proc}, parts...)...)
}

func (e *Env) timeout() time.Duration {
	if e.Timeout <= 0 {
		return defaultTimeout
	}
	return e.Timeout
}

// display strips Root from a path shown to the user, who thinks in host paths.
func (e *Env) display(p string) string {
	if filepath.Clean(e.Root) == "/" {
		return p
	}
	rel, err := filepath.Rel(e.Root, p)
	if err != nil || strings.HasPrefix(rel, "..") {
		return p
	}
	return "/" + rel
}
