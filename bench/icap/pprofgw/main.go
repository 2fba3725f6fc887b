// Command pprofgw is clamgate with a net/http/pprof listener when
// CLAMGATE_PPROF=host:port is set: a temporary profiling build for the ICAP
// benchmark (GATEWAY_BIN=... bash bench/icap/run.sh).
package main

import (
	"context"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"syscall"

	"clamgate/internal/cli"
)

func main() {
	if addr := os.Getenv("CLAMGATE_PPROF"); addr != "" {
		go http.ListenAndServe(addr, nil)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
