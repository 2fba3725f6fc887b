package doctor

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"clamgate/internal/deploy"
)

func engineIDsCheck() check {
	return check{
		id: "engine-ids", title: "clamd's socket directory belongs to no other account of the host",
		expected: "the engine's own uid (a user namespace for the container)",
		source:   "Whoever owns the engine's socket directory can put a fake clamd there that answers OK to everything; a container's uid 100 is messagebus on Debian 12. docs/doctor.md#engine-ids", offline: true,
		run: checkEngineIDs,
	}
}

// checkEngineIDs: whoever owns the engine's socket directory can put a
// fake clamd there that answers OK to everything. For the container, the
// owner must be no host account (deploy maps the container's ids above
// deploy.EngineIDBase); for the unit engine it is the unit's clamd user.
func checkEngineIDs(_ context.Context, h *host) verdict {
	dir := h.env.path(deploy.EngineDir)
	fi, err := os.Stat(dir)
	if err != nil {
		return pass("no " + deploy.EngineDir + " (yet): nothing to own")
	}
	uid := int(fi.Sys().(*syscall.Stat_t).Uid)
	name := accountOf(h.env.path("/etc/passwd"), uid)
	if engine, ok := imagelessEngine(h); ok {
		return pass(fmt.Sprintf("%s belongs to %s (uid %d): %s", deploy.EngineDir, or(name, "no account"), uid, engine))
	}
	if name != "" {
		return verdict{status: Fail,
			measured: fmt.Sprintf("%s belongs to uid %d, the host's %s: its processes can replace clamd's socket with one that answers OK", deploy.EngineDir, uid, name),
			fix:      fmt.Sprintf("clamgate deploy apply: the container then runs in a user namespace (host ids from %d), and the directory is the engine's own", deploy.EngineIDBase)}
	}
	return pass(fmt.Sprintf("%s belongs to uid %d, no account of this host", deploy.EngineDir, uid))
}

// accountOf is the name passwd gives uid, "" for none.
func accountOf(passwd string, uid int) string {
	b, _ := os.ReadFile(passwd)
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Split(line, ":"); len(f) > 2 && f[2] == strconv.Itoa(uid) {
			return f[0]
		}
	}
	return ""
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
