package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"clamgate/internal/deploy"
)

const deployUsage = `usage:
  clamgate deploy plan     [--root DIR] [--config FILE] [--engine container|unit] [--image REF] [--allow-moving-tag]
  clamgate deploy apply    [--root DIR] [--config FILE] [--engine container|unit] [--image REF] [--allow-moving-tag]
  clamgate deploy rollback [--root DIR]
`

// deployCmd runs plan, apply or rollback on the host tree under --root.
func deployCmd(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, deployUsage)
		return exitError
	}
	sub := args[0]
	fs := flag.NewFlagSet("deploy "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts deploy.Options
	fs.StringVar(&opts.Root, "root", "/", "the host's root directory (a tree standing for it in tests and image builds)")
	if sub != "rollback" {
		fs.StringVar(&opts.Config, "config", "", "install this clamgate.toml instead of the generated one")
		fs.StringVar(&opts.Engine, "engine", "", "how clamd runs: container (podman) or unit (a hardened systemd unit, no container runtime); default: container where podman is installed, else unit")
		fs.StringVar(&opts.Image, "image", "", "engine image, pinned: NAME@sha256:... (default: "+deploy.UpstreamImage+")")
		fs.BoolVar(&opts.AllowMovingTag, "allow-moving-tag", false, "accept an image reference that is a tag, not a digest")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return exitError
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	switch sub {
	case "plan":
		return deployPlan(opts, stdout, stderr)
	case "apply":
		return deployApply(opts, stdout, stderr, log)
	case "rollback":
		return deployRollback(opts.Root, stdout, stderr, log)
	}
	fmt.Fprintf(stderr, "clamgate deploy: unknown command %q\n%s", sub, deployUsage)
	return exitError
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

func deployApply(opts deploy.Options, stdout, stderr io.Writer, log *slog.Logger) int {
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
	fmt.Fprintf(stdout, "applied %d changes; backup and manifest in %s\nnext, on the host:\n  %s\n",
		len(p.Changes), dir, strings.Join(p.Next, "\n  "))
	return 0
}

func deployRollback(root string, stdout, stderr io.Writer, log *slog.Logger) int {
	dirs, err := deploy.Rollback(root, log)
	if err != nil {
		fmt.Fprintln(stderr, "clamgate deploy rollback:", err)
		return 1
	}
	if len(dirs) == 0 {
		fmt.Fprintln(stdout, "nothing to roll back")
		return 0
	}
	fmt.Fprintf(stdout, "rolled back %s\nnext, on the host: systemctl daemon-reload, stop clamgate.service and clamgate-clamd.service,\n  enable --now the unmasked units, reload amavis, postfix and squid\n", strings.Join(dirs, ", "))
	return 0
}
