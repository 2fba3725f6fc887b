package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"time"

	"clamgate/internal/deploy"
)

// deploySubs are deploy's subcommands, in the order its usage lists them.
var deploySubs = []string{"plan", "apply", "rollback"}

// deployCmd runs plan, apply or rollback on the host tree under --root.
func deployCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 0:
		fmt.Fprint(stderr, groupUsage(ctx, "deploy", deploySubs))
		return exitError
	case isHelp(args[0]):
		fmt.Fprint(stdout, groupUsage(ctx, "deploy", deploySubs))
		return 0
	case !slices.Contains(deploySubs, args[0]):
		fmt.Fprintf(stderr, "clamgate deploy: unknown command %q\n%s", args[0], groupUsage(ctx, "deploy", deploySubs))
		return exitError
	}
	sub := args[0]
	fs := newFlags("deploy "+sub, "")
	var opts deploy.Options
	fs.StringVar(&opts.Root, "root", "/", "the host's root `DIR` (a tree standing for it in tests and image builds)")
	if sub != "rollback" {
		fs.StringVar(&opts.Config, "config", "", "install this clamgate.toml `FILE` instead of the generated one")
		fs.StringVar(&opts.Engine, "engine", "", "how clamd runs, the `KIND`: container (podman), unit (a hardened systemd unit, no container runtime) or edge (none: see --pool); default: container where podman is installed, else unit")
		fs.StringVar(&opts.Image, "image", "", "engine image `REF`, pinned: NAME@sha256:... (default: "+deploy.UpstreamImage+")")
		fs.BoolVar(&opts.AllowMovingTag, "allow-moving-tag", false, "accept an image reference that is a tag, not a digest")
		fs.Var((*multi)(&opts.Pool), "pool", "the edge variant, no clamd on this host: a scanning pool's endpoint `ADDR`, tls:HOST:PORT, to forward every scan to (repeatable: failover)")
		fs.StringVar(&opts.PoolCert, "pool-cert", "", "with --pool: this host's client certificate `FILE` (PEM), which names it to the pool")
		fs.StringVar(&opts.PoolKey, "pool-key", "", "with --pool: that certificate's key `FILE`, readable by user clamgate")
		fs.StringVar(&opts.PoolCA, "pool-ca", "", "with --pool: the CA `FILE` that signed the pool's certificates")
	}
	var act activation
	if sub != "plan" {
		fs.BoolVar(&act.on, "activate", false, "then run the systemctl, postfix and squid commands that put the change into service")
	}
	if code, ok := parseFlags(fs, args[1:], stdout, stderr); !ok {
		return code
	}
	if act.on && opts.Root != "/" {
		fmt.Fprintln(stderr, "clamgate deploy: --activate acts on the running system; it cannot be combined with --root")
		return exitError
	}
	act.ctx, act.stdout, act.stderr = ctx, stdout, stderr
	log := slog.New(slog.NewTextHandler(stderr, nil))
	switch sub {
	case "plan":
		return deployPlan(opts, stdout, stderr)
	case "apply":
		return deployApply(opts, act, stdout, stderr, log)
	case "rollback":
		return deployRollback(opts.Root, act, stdout, stderr, log)
	}
	return exitError // deploySubs lists only the cases above
}

func deployPlan(opts deploy.Options, stdout, stderr io.Writer) int {
	p, err := deploy.Build(opts)
	if err != nil {
		fmt.Fprintln(stderr, "clamgate deploy plan:", err)
		return 1
	}
	if err := p.Write(stdout); err != nil {
		fmt.Fprintln(stderr, "clamgate deploy plan:", err)
		return 1
	}
	return 0
}

func deployApply(opts deploy.Options, act activation, stdout, stderr io.Writer, log *slog.Logger) int {
	p, err := deploy.Build(opts)
	if err == nil {
		err = p.Write(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "clamgate deploy apply:", err)
		return 1
	}
	if len(p.Changes) == 0 {
		return 0 // Write said "nothing to change"
	}
	dir, err := deploy.Apply(p, time.Now(), log)
	if err != nil {
		fmt.Fprintln(stderr, "clamgate deploy apply:", err)
		return 1
	}
	if act.on {
		fmt.Fprintf(stdout, "applied %d changes; backup and manifest in %s\nactivating:\n", len(p.Changes), dir)
		return act.run("apply", deploy.Activation(p))
	}
	fmt.Fprintf(stdout, "applied %d changes; backup and manifest in %s\nnext, on the host (or apply --activate):\n  %s\n",
		len(p.Changes), dir, strings.Join(p.Next, "\n  "))
	return 0
}

func deployRollback(root string, act activation, stdout, stderr io.Writer, log *slog.Logger) int {
	deact := deploy.Deactivation(root) // before rollback removes the units it names
	if act.on {
		pending, err := deploy.Pending(root)
		if err != nil {
			fmt.Fprintln(stderr, "clamgate deploy rollback:", err)
			return 1
		}
		if pending {
			if code := act.run("rollback", deact); code != 0 {
				return code
			}
		}
	}
	dirs, err := deploy.Rollback(root, log)
	if err != nil {
		fmt.Fprintln(stderr, "clamgate deploy rollback:", err)
		return 1
	}
	if len(dirs) == 0 {
		fmt.Fprintln(stdout, "nothing to roll back")
		return 0
	}
	fmt.Fprintf(stdout, "rolled back %s\n", strings.Join(dirs, ", "))
	if !act.on {
		fmt.Fprintf(stdout, "next, on the host (or rollback --activate): %s,\n  systemctl daemon-reload, start the unmasked units, restart amavis, postfix reload, squid -k reconfigure\n", strings.Join(deact[0], " "))
		return 0
	}
	return act.reactivate(root, dirs)
}

// activation runs the commands that put a deploy change into service,
// echoing each one and its output, and stops at the first that fails.
type activation struct {
	on             bool
	ctx            context.Context
	stdout, stderr io.Writer
}

func (a activation) run(what string, cmds [][]string) int {
	for _, c := range cmds {
		fmt.Fprintln(a.stdout, "+ "+strings.Join(c, " "))
		cmd := exec.CommandContext(a.ctx, c[0], c[1:]...)
		cmd.Stdout, cmd.Stderr = a.stdout, a.stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(a.stderr, "clamgate deploy %s --activate: %s: %v\n", what, strings.Join(c, " "), err)
			return 1
		}
	}
	return 0
}

// reactivate starts the units rollback unmasked that are enabled (a unit
// that was installed but never used stays stopped), then reloads the clients.
func (a activation) reactivate(root string, dirs []string) int {
	units, err := deploy.Unmasked(dirs)
	if err == nil {
		units = slices.DeleteFunc(units, func(u string) bool {
			state, _ := exec.CommandContext(a.ctx, "systemctl", "is-enabled", u).Output()
			return strings.TrimSpace(string(state)) != "enabled"
		})
	}
	h, err2 := deploy.Inspect(root)
	if err = errors.Join(err, err2); err != nil {
		fmt.Fprintln(a.stderr, "clamgate deploy rollback --activate:", err)
		return 1
	}
	return a.run("rollback", deploy.Reactivation(h, units))
}
