package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"clamgate/internal/addr"
	"clamgate/internal/sigdb"
)

// CheckHost tells what only the host can: whether the directories and
// programs the file names exist and are safe to use. The parser already
// refused unknown users and groups. Errors carry the key's line.
func (c *Config) CheckHost() []error {
	var errs []error
	for _, name := range c.PolicyNames() {
		p := c.Policies[name]
		for _, r := range p.Roots {
			if err := checkRoot(r, p.UIDs); err != nil {
				errs = append(errs, c.ErrorAt("policy."+name+".roots", "%v", err))
			}
		}
	}
	for i, l := range c.Listeners {
		if a, _ := addr.Parse(l.Address); a.Path() != "" {
			if dir := filepath.Dir(a.Path()); !isDirectory(dir) {
				errs = append(errs, c.ErrorAt(fmt.Sprintf("listener[%d].address", i), "directory %s does not exist", dir))
			}
		}
	}
	if e := c.Engine; e != nil {
		if fi, err := os.Stat(e.Clamd); err != nil || fi.Mode()&0o111 == 0 {
			errs = append(errs, c.ErrorAt("engine.clamd", "%s is not an executable file", e.Clamd))
		}
		if e.Database != "" {
			if err := checkSignatures(e.Database); err != nil {
				errs = append(errs, c.ErrorAt("engine.database", "%v", err))
			}
		}
	}
	errs = append(errs, c.checkTLS()...)
	if d := c.Database.Dir; d != "" && c.Database.Watch {
		if err := checkSignatures(d); err != nil {
			errs = append(errs, c.ErrorAt("database.dir", "%v", err))
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
	if !fi.IsDir() {
		return fmt.Errorf("root %s is not a directory", root)
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

func isDirectory(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}
