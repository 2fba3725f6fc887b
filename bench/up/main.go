// Command up starts a benchmark's clamd and, with -gateway, the gateway
// under test, the one way bench/benchenv does it, and exits once both
// answer, leaving them running. It prints shell assignments for the run.sh
// scripts (through bench_up in bench/lib.sh), which stop the processes:
//
//	clamd_pid=N gw_pid=N dbdir=DIR clamd_version='ClamAV 1.4.6/...'
//
// Usage: up -dir DIR [-db DIR] [-gateway BIN -ready ADDR...] [-- serve arguments...]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"clamgate/bench/benchenv"
	"clamgate/internal/clamd"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	dir := flag.String("dir", "", "the run's directory: clamd.sock, clamd.conf, the logs")
	db := flag.String("db", "", "signature directory (default: the test database in DIR/db)")
	bin := flag.String("gateway", "", "gateway binary to start after clamd; empty: clamd only")
	var ready, env, conf list
	flag.Var(&conf, "clamd-conf", "an extra clamd.conf line, e.g. \"ConcurrentDatabaseReload no\" (repeatable)")
	flag.Var(&ready, "ready", "address the gateway must accept connections on (repeatable)")
	flag.Var(&env, "env", "NAME=VALUE for the gateway only (repeatable)")
	flag.Parse()
	if *dir == "" {
		fail(fmt.Errorf("-dir is required"))
	}
	if fi, err := os.Stat(*db); *db != "" && (err != nil || !fi.IsDir()) {
		fail(fmt.Errorf("-db %s is not a directory", *db))
	}
	c, err := benchenv.StartClamd(*dir, *db, conf...)
	if err != nil {
		fail(err)
	}
	client, _ := clamd.New("unix:"+c.Socket, 10*time.Second)
	version, _ := client.Command(context.Background(), "VERSION")
	fmt.Printf("clamd_pid=%d dbdir=%q clamd_version=%q\n", c.PID(), c.DB, version)
	if *bin == "" {
		return
	}
	gw, err := benchenv.StartGateway(*dir, *bin, env, ready, flag.Args()...)
	if err != nil {
		c.Stop()
		fail(err)
	}
	fmt.Printf("gw_pid=%d\n", gw.PID())
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "up:", err)
	os.Exit(1)
}
