// Command clamgate is one gateway in front of one hardened clamd for every
// local ClamAV client. See the README.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"clamgate/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
