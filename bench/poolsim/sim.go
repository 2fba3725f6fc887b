package main

import (
	"math"
	"time"
)

// Params describe a pool and its day. Rates are scans per second.
type Params struct {
	Pods    int
	PodRate float64 // scans/s one pod serves at full use
	Cores   int     // per pod: a concurrent reload takes one of them while it loads
	// MeanRate is the demand averaged over the day; PeakFactor its peak ÷
	// mean, with the peak at PeakHour.
	MeanRate, PeakFactor, PeakHour float64
	Updates                        int           // database updates a day (freshclam's default: 24 checks)
	Offset                         time.Duration // the first update's time after midnight
	Reload                         time.Duration // how long a reload holds scans (frugal) or loads (concurrent)
	Unready                        time.Duration // [database] stagger_unready
	Handover                       time.Duration // lease freed → the next pod has it (its poll)
	Mode                           string        // "staggered", "unstaggered" (frugal) or "concurrent"
}

// Modes are the ways a pool can reload.
var Modes = []string{"staggered", "unstaggered", "concurrent"}

// Result is what the day looked like, one-second steps.
type Result struct {
	MinPods          int     // fewest pods in service at once
	MinCapacity      float64 // least capacity in service, scans/s
	MinHeadroom      float64 // least capacity ÷ demand
	OverloadSeconds  int     // seconds with demand above capacity
	OutageSeconds    int     // seconds with no pod in service (the Service has no endpoints)
	Refused          float64 // scans that arrived meanwhile: refused connections
	MaxWait          float64 // longest queueing delay from the backlog, seconds
	ReloadsPerPodDay int
}

const day = 24 * 60 * 60

// Simulate runs the pool through one day.
func Simulate(p Params) Result {
	out := outages(p) // per second: pods out of service
	slow := make([]float64, day)
	if p.Mode == "concurrent" {
		// Pods stay in service; each loses one core while it loads.
		for _, u := range updates(p) {
			for s := u; s < u+secs(p.Reload) && s < day; s++ {
				slow[s] = float64(p.Pods) * p.PodRate / float64(max(1, p.Cores))
			}
		}
	}
	shape := demandShape(p.PeakFactor, p.PeakHour)
	r := Result{MinPods: p.Pods, MinCapacity: math.Inf(1), MinHeadroom: math.Inf(1), ReloadsPerPodDay: p.Updates}
	backlog := 0.0
	for s := range day {
		pods := p.Pods - out[s]
		capacity := float64(pods)*p.PodRate - slow[s]
		demand := p.MeanRate * shape[s]
		r.MinPods = min(r.MinPods, pods)
		r.MinCapacity = min(r.MinCapacity, capacity)
		if demand > 0 {
			r.MinHeadroom = min(r.MinHeadroom, capacity/demand)
		}
		if pods == 0 {
			r.OutageSeconds++
			r.Refused += demand
			continue
		}
		if demand > capacity {
			r.OverloadSeconds++
		}
		backlog = max(0, backlog+demand-capacity)
		r.MaxWait = max(r.MaxWait, backlog/capacity)
	}
	return r
}

// outages counts, for every second of the day, the pods out of service.
func outages(p Params) []int {
	out := make([]int, day)
	mark := func(from, to int) {
		for s := max(0, from); s < min(day, to); s++ {
			out[s]++
		}
	}
	switch p.Mode {
	case "unstaggered":
		// Every pod sees the update at once and holds its scans.
		for _, u := range updates(p) {
			for range p.Pods {
				mark(u, u+secs(p.Reload))
			}
		}
	case "staggered":
		// One lease: a pod leaves the Service (unready), reloads, comes
		// back (unready again, so the Service has it before the next
		// leaves) and hands the lease on. Reloads queue across updates.
		free := 0
		for _, u := range updates(p) {
			for range p.Pods {
				start := max(u, free)
				held := secs(p.Unready) + secs(p.Reload)
				mark(start, start+held)
				free = start + held + secs(p.Unready) + secs(p.Handover)
			}
		}
	}
	return out
}

// updates are the seconds of the day the database changes.
func updates(p Params) []int {
	var u []int
	for i := range p.Updates {
		u = append(u, secs(p.Offset)+i*day/p.Updates)
	}
	return u
}

func secs(d time.Duration) int { return int(math.Ceil(d.Seconds())) }

// demandShape is the day's demand per second relative to its mean: a
// smooth single peak (a von Mises curve) with mean 1 and maximum peak.
func demandShape(peak, hour float64) []float64 {
	peak = max(peak, 1)
	// The peak ÷ mean of exp(k·cos θ) is e^k ÷ I0(k); the mean, of a
	// smooth periodic function, is exact enough over 3600 points.
	ratio := func(k float64) float64 {
		sum := 0.0
		for i := range 3600 {
			sum += math.Exp(k * math.Cos(2*math.Pi*float64(i)/3600))
		}
		return math.Exp(k) / (sum / 3600)
	}
	lo, hi := 0.0, 20.0
	for range 50 {
		mid := (lo + hi) / 2
		if ratio(mid) < peak {
			lo = mid
		} else {
			hi = mid
		}
	}
	s := make([]float64, day)
	for i := range s {
		s[i] = math.Exp(lo * math.Cos(2*math.Pi*(float64(i)/day-hour/24)))
	}
	sum := 0.0
	for _, v := range s {
		sum += v
	}
	for i := range s {
		s[i] *= float64(day) / sum
	}
	return s
}

// Replicas is the sizing formula of docs/scaling.md: the pods the peak
// needs at the target utilisation, plus one that may be out reloading.
func Replicas(perDay, peakFactor, podRate, utilisation float64) int {
	peak := perDay / day * peakFactor
	return int(math.Ceil(peak/(podRate*utilisation))) + 1
}
