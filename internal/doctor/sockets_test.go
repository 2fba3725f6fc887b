package doctor_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"clamgate/internal/config"
	"clamgate/internal/doctor"
	"clamgate/internal/testenv"
)

// TestSockets runs the real gateway with four unix listeners and judges
// each through its own configuration; the refusal check really connects
// as nobody, through the re-executed test binary.
func TestSockets(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to connect as nobody")
	}
	engine := startClamd(t, clamdOpts{})
	dir := testenv.TempDir(t)
	listener := func(name, policy, mode, group string) string {
		s := fmt.Sprintf("[[listener]]\naddress = \"unix:%s\"\npolicy = %q\nmode = %q\n", filepath.Join(dir, name), policy, mode)
		if group != "" {
			s += fmt.Sprintf("group = %q\n", group)
		}
		return s
	}
	policies := "[policy.any]\n[policy.rootonly]\nusers = [\"root\"]\n"
	backend := fmt.Sprintf("[backend]\naddress = \"unix:%s\"\n", engine.socket)
	group := listener("group.sock", "any", "0660", "root")       // the common setup: group bits, nobody outside
	open := listener("open.sock", "any", "0666", "")             // anyone may connect and scan
	named := listener("named.sock", "rootonly", "0666", "")      // the kernel admits all, the gateway only root
	tampered := listener("tampered.sock", "any", "0660", "root") // chmod-ed by hand after start
	parse := func(listeners ...string) *config.Config {
		src := backend
		for _, l := range listeners {
			src += l
		}
		cfg, err := config.Parse("doctor.toml", []byte(src+policies))
		must(t, err)
		return cfg
	}
	testenv.StartGateway(t, parse(group, open, named, tampered))
	must(t, os.Chmod(filepath.Join(dir, "tampered.sock"), 0o666))

	row := func(id string, listeners ...string) doctor.Result {
		env := liveEnv()
		env.Config = parse(listeners...)
		return runOne(t, env, id)
	}
	t.Run("group socket", func(t *testing.T) {
		expect(t, row("socket-mode", group), doctor.Pass, "srw-rw----", ":root")
		expect(t, row("socket-refused", group), doctor.Pass, "nobody refused by the kernel (permission denied)")
	})
	t.Run("open socket", func(t *testing.T) {
		expect(t, row("socket-mode", open), doctor.Warn, "world-writable and the policy admits everyone")
		expect(t, row("socket-refused", open), doctor.Fail, "nobody got PONG")
	})
	t.Run("policy names its users", func(t *testing.T) {
		expect(t, row("socket-mode", named), doctor.Pass, "srw-rw-rw-")
		expect(t, row("socket-refused", named), doctor.Pass, "nobody refused by the gateway", "not allowed by client policy")
	})
	t.Run("mode changed by hand", func(t *testing.T) {
		expect(t, row("socket-mode", tampered), doctor.Fail, "mode 0666, configured 0660")
		expect(t, row("socket-refused", tampered), doctor.Fail, "nobody got PONG")
	})
	t.Run("all at once", func(t *testing.T) {
		expect(t, row("socket-mode", group, open, named, tampered), doctor.Fail, "group.sock", "tampered.sock")
	})
	t.Run("missing socket", func(t *testing.T) {
		expect(t, row("socket-mode", listener("gone.sock", "any", "0660", "")), doctor.Warn, "missing")
		expect(t, row("socket-refused", listener("gone.sock", "any", "0660", "")), doctor.Warn, "could not probe")
	})
	t.Run("probe that cannot run proves nothing", func(t *testing.T) {
		env := liveEnv()
		env.Config = parse(open)
		env.Probe = doctor.ExecProber{Argv: []string{"/nonexistent/clamgate", doctor.ProbeArg}}
		expect(t, runOne(t, env, "socket-refused"), doctor.Warn, "probe did not run")
	})
}
