// Command attack is the load check of issue 14: it runs, from an
// unprivileged local user, the attacks that made one client able to stop
// every client's scanning, against a gateway process in front of a real
// clamd, and measures side by side, with no attack and under each one, an
// authorised client's PING and EICAR INSTREAM latency and the gateway's
// RSS and descriptor count.
//
//	go build -o /tmp/clamgate ./cmd/clamgate
//	go run ./bench/attack -gateway /tmp/clamgate [-attacks icap-preview,...] [-duration 10s] [-user cgattacker]
//
// It runs as root (it creates the user and drops to it with setpriv). Each
// attack stops early when the gateway passes a safety net (768 MiB more
// RSS or 15000 more descriptors), so that running it against a gateway
// without the bounds does not take the machine down. The same attacks, with
// their bounds asserted, are the regression tests in main_test.go.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "hit" {
		hit(os.Args[2:])
		return
	}
	gateway := flag.String("gateway", "", "clamgate binary")
	names := flag.String("attacks", "", "comma-separated attacks (default: all)")
	duration := flag.Duration("duration", 10*time.Second, "time per phase")
	user := flag.String("user", "cgattacker", "unprivileged user the attacks run as (created if missing, and then removed when the run ends)")
	flag.IntVar(&metricsConnCount, "metrics-conns", 5000, "connections of the metrics-conns attack")
	flag.Parse()
	if *gateway == "" {
		fail(fmt.Errorf("need -gateway BIN"))
	}
	list, err := selected(*names)
	if err != nil {
		fail(err)
	}
	self, err := os.Executable()
	if err != nil {
		fail(err)
	}
	env, err := StartEnv(*gateway, self, *user)
	if err != nil {
		fail(err)
	}
	defer env.Stop()
	phases := []Phase{env.Measure(nil, *duration, Limits{})}
	for _, a := range list {
		fmt.Fprintf(os.Stderr, "attack %s: %s\n", a.Name, a.What)
		phases = append(phases, env.Measure(&a, *duration, Limits{}))
	}
	report(os.Stdout, phases)
}

func selected(names string) ([]Attack, error) {
	if names == "" {
		return attacks, nil
	}
	var out []Attack
	for _, n := range strings.Split(names, ",") {
		a, ok := findAttack(strings.TrimSpace(n))
		if !ok {
			return nil, fmt.Errorf("no attack %q", n)
		}
		out = append(out, a)
	}
	return out, nil
}

// hit is the attacker's side: run one attack until killed.
func hit(args []string) {
	fs := flag.NewFlagSet("hit", flag.ExitOnError)
	name := fs.String("attack", "", "attack to run")
	var t Target
	fs.StringVar(&t.Clamd, "clamd", "", "")
	fs.StringVar(&t.ClamdOpen, "clamd-open", "", "")
	fs.StringVar(&t.ICAP, "icap", "", "")
	fs.StringVar(&t.Milter, "milter", "", "")
	fs.StringVar(&t.HTTP, "http", "", "")
	fs.IntVar(&metricsConnCount, "metrics-conns", metricsConnCount, "")
	fs.Parse(args)
	a, ok := findAttack(*name)
	if !ok {
		fail(fmt.Errorf("no attack %q", *name))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	a.Run(ctx, t)
}

func report(w *os.File, phases []Phase) {
	fmt.Fprintln(w, "| attack | PING p50 / max ms | EICAR p50 / max ms | probes failed | gateway RSS base → peak MiB | fds base → peak | stopped early |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, p := range phases {
		stopped := p.Exceeded
		if stopped == "" {
			stopped = "no"
		}
		failed := fmt.Sprintf("%d of %d", p.Failed, len(p.Ping)+len(p.Eicar))
		if p.FirstFail != "" {
			failed += " (" + p.FirstFail + ")"
		}
		fmt.Fprintf(w, "| %s | %.1f / %.1f | %.1f / %.1f | %s | %.1f → %.1f | %d → %d | %s |\n", p.Attack,
			percentile(p.Ping, 0.5), percentile(p.Ping, 1), percentile(p.Eicar, 0.5), percentile(p.Eicar, 1),
			failed, mib(p.RSSBase), mib(p.RSSPeak), p.FDBase, p.FDPeak, stopped)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "attack:", err)
	os.Exit(1)
}
