// Command poolsim runs an N-pod scanning pool through a day of database
// updates and a traffic curve, once per way of reloading (staggered frugal
// reloads through the Lease, frugal reloads all at once, concurrent
// reloads), and prints what capacity was left at the worst second. Its
// defaults are the measurements of docs/scaling.md (scripts/scaling.sh).
//
//	go run ./bench/poolsim                                  # the docs' table
//	go run ./bench/poolsim -per-day 20000000 -peak 3        # sized by the formula
//	go run ./bench/poolsim -pods 4 -reload 40s -rate 30
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	p := Params{Mode: "staggered"}
	flag.IntVar(&p.Pods, "pods", 0, "pods in the pool (0: from -per-day by the sizing formula)")
	flag.Float64Var(&p.PodRate, "rate", 7.5, "scans/s one pod serves (50 KiB mail, 2 cores × 3.77/s, 3 M synthetic signatures: docs/scaling.md)")
	flag.IntVar(&p.Cores, "cores", 2, "cores per pod")
	perDay := flag.Float64("per-day", 1e6, "scans a day (messages or downloads)")
	flag.Float64Var(&p.PeakFactor, "peak", 3, "peak ÷ mean demand")
	flag.Float64Var(&p.PeakHour, "peak-hour", 14, "hour of the peak")
	util := flag.Float64("utilisation", 0.7, "target utilisation of the pods the peak needs")
	flag.IntVar(&p.Updates, "updates", 24, "database updates a day (freshclam checks 24 times a day by default)")
	flag.DurationVar(&p.Offset, "offset", 14*time.Minute, "first update after midnight")
	flag.DurationVar(&p.Reload, "reload", 70*time.Second, "a reload's hold (frugal) or load (concurrent)")
	flag.DurationVar(&p.Unready, "unready", 5*time.Second, "[database] stagger_unready")
	flag.DurationVar(&p.Handover, "handover", time.Second, "lease released → taken by the next pod")
	flag.Parse()
	p.MeanRate = *perDay / day
	if p.Pods == 0 {
		p.Pods = Replicas(*perDay, p.PeakFactor, p.PodRate, *util)
	}
	if p.Pods < 1 || p.PodRate <= 0 || p.Updates < 1 {
		fmt.Fprintln(os.Stderr, "poolsim: need -pods ≥ 1 (or -per-day), -rate > 0, -updates ≥ 1")
		os.Exit(2)
	}
	fmt.Printf("pool: %d pods × %.1f scans/s; demand %.0f scans/day = %.1f/s mean, %.1f/s at the %.0f:00 peak (×%.1f); %d updates/day, reload %s, unready %s\n",
		p.Pods, p.PodRate, *perDay, p.MeanRate, p.MeanRate*p.PeakFactor, p.PeakHour, p.PeakFactor, p.Updates, p.Reload, p.Unready)
	fmt.Printf("%-12s %8s %14s %12s %11s %11s %10s %10s\n", "reloads", "min pods", "min capacity/s", "min headroom", "overload s", "no-pod s", "refused", "max wait s")
	for _, m := range Modes {
		p.Mode = m
		r := Simulate(p)
		fmt.Printf("%-12s %8d %14.1f %11.2fx %11d %11d %10.0f %10.1f\n", m, r.MinPods, r.MinCapacity, r.MinHeadroom,
			r.OverloadSeconds, r.OutageSeconds, r.Refused, r.MaxWait)
	}
	fmt.Printf("floor with the stagger: %d of %d pods, %.0f%% of capacity, at every second of the day\n",
		p.Pods-1, p.Pods, 100*float64(p.Pods-1)/float64(p.Pods))
}
