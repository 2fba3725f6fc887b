package startup

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"

	"clamgate/internal/addr"
	"clamgate/internal/config"
	"clamgate/internal/listen"
	"clamgate/internal/policy"
	"clamgate/internal/sigdb"

	"golang.org/x/sys/unix"
)

// roots opens every policy's roots as serve does (policy.OpenRoot, which
// refuses a path below a directory other users can change) and closes
// them again; then refuses a root other local users could change.
func roots(_ context.Context, cfg *config.Config) []error {
	var errs []error
	ids, _ := Resolve(cfg) // an unknown user is the accounts check's error
	for _, name := range cfg.PolicyNames() {
		p := cfg.Policies[name]
		for _, dir := range p.Roots {
			r, err := policy.OpenRoot(dir, p.AllowWritableRootAncestors)
			if err == nil {
				r.Close()
				err = checkRoot(dir, ids.UIDs(p.Users))
			}
			if err != nil {
				errs = append(errs, cfg.ErrorAt("policy."+name+".roots", "%v", err))
			}
		}
	}
	return errs
}

// checkRoot refuses a root that another local user could change under the
// gateway: one writable by anyone, or, when the policy names its users,
// owned by another (the policy's own users may write their root: that is
// what it is for).
func checkRoot(root string, owners []uint32) error {
	fi, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("root %s: %w", root, err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm()&0o002 != 0 && fi.Mode()&os.ModeSticky == 0 {
		return fmt.Errorf("root %s is writable by every user (mode %04o)", root, fi.Mode().Perm())
	}
	if st.Uid != 0 && len(owners) > 0 && !slices.Contains(owners, st.Uid) {
		return fmt.Errorf("root %s belongs to uid %d, which is neither root nor a user of this policy", root, st.Uid)
	}
	return nil
}

// sockets checks each listener as listen.Listen would bind it. A socket
// inherited from systemd (clamgate.socket) is bound by systemd as root,
// so its directory and owner are not this process's business.
func sockets(_ context.Context, cfg *config.Config) []error {
	var errs []error
	activated := os.Getenv("LISTEN_FDS") != ""
	ids, _ := Resolve(cfg)
	for i, l := range cfg.Listeners {
		if activated && strings.HasPrefix(l.Address, "unix:") {
			continue
		}
		err := listen.Check(ids.Spec(l))
		if a, perr := addr.Parse(l.Address); err == nil && perr == nil && a.Path() == "" {
			err = listen.CheckTCP(a.Address, l.AllowNonLoopback) // a name, resolved here
		}
		if err != nil {
			errs = append(errs, cfg.ErrorAt(fmt.Sprintf("listener[%d].address", i), "%v", err))
		}
	}
	return errs
}

func httpAddress(_ context.Context, cfg *config.Config) []error {
	if cfg.HTTP == "" {
		return nil
	}
	hostPort := strings.TrimPrefix(cfg.HTTP, "tcp:")
	err := listen.CheckPort(hostPort)
	if err == nil {
		err = listen.CheckTCP(hostPort, cfg.HTTPAllowNonLoopback)
	}
	if err != nil {
		return []error{cfg.ErrorAt("server.http", "%v", err)}
	}
	return nil
}

// stateDir: the managed engine makes its directory and writes clamd.conf
// there at start.
func stateDir(_ context.Context, cfg *config.Config) []error {
	// Under an engine unit ([engine] unit), clamd's own user writes its
	// directory, which systemd-tmpfiles makes; the gateway writes nothing
	// there, it only connects to the socket.
	if cfg.Engine == nil || cfg.Engine.Unit != "" {
		return nil
	}
	if err := listen.CheckDir(cfg.Engine.StateDir); err != nil {
		return []error{cfg.ErrorAt("engine.state_dir", "%v", err)}
	}
	return nil
}

func clamdProgram(_ context.Context, cfg *config.Config) []error {
	e := cfg.Engine
	if e == nil {
		return nil
	}
	fi, err := os.Stat(e.Clamd)
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("not a file")
	}
	if err == nil {
		err = unix.Faccessat(unix.AT_FDCWD, e.Clamd, unix.X_OK, unix.AT_EACCESS)
	}
	if err != nil {
		return []error{cfg.ErrorAt("engine.clamd", "%s is not a program uid %d can run: %v", e.Clamd, os.Geteuid(), err)}
	}
	return nil
}

func engineDatabase(_ context.Context, cfg *config.Config) []error {
	// "test" names the built-in test database (engine.TestDatabase), which
	// the engine writes itself at start: there is no directory to check.
	if cfg.Engine == nil || cfg.Engine.Database == "" || cfg.Engine.Database == "test" {
		return nil
	}
	if err := checkSignatures(cfg.Engine.Database); err != nil {
		return []error{cfg.ErrorAt("engine.database", "%v", err)}
	}
	return nil
}

func watchedDatabase(_ context.Context, cfg *config.Config) []error {
	if cfg.Database.Dir == "" || !cfg.Database.Watch {
		return nil
	}
	if err := checkSignatures(cfg.Database.Dir); err != nil {
		return []error{cfg.ErrorAt("database.dir", "%v", err)}
	}
	return nil
}

func checkSignatures(dir string) error {
	s, err := sigdb.Load(dir)
	if err != nil {
		return err
	}
	if len(s.Files) == 0 {
		return fmt.Errorf("%s holds no signature files", dir)
	}
	return nil
}
