package main

import (
	"math"
	"testing"
	"time"
)

func params(mode string) Params {
	return Params{Pods: 4, PodRate: 50, Cores: 2, MeanRate: 40, PeakFactor: 3, PeakHour: 14, Updates: 24,
		Offset: 14 * time.Minute, Reload: 30 * time.Second, Unready: 5 * time.Second, Handover: time.Second, Mode: mode}
}

// TestStaggerKeepsAllButOnePod: with the lease, at most one pod is out at
// any second of the day, so the floor is N-1 pods; all at once, every
// update is an outage as long as the reload.
func TestStaggerKeepsAllButOnePod(t *testing.T) {
	s := Simulate(params("staggered"))
	if s.MinPods != 3 || s.OutageSeconds != 0 || s.Refused != 0 {
		t.Errorf("staggered: %+v", s)
	}
	u := Simulate(params("unstaggered"))
	if u.MinPods != 0 || u.OutageSeconds != 24*30 || u.Refused == 0 {
		t.Errorf("unstaggered: %+v", u)
	}
	c := Simulate(params("concurrent"))
	if c.MinPods != 4 || c.MinCapacity != 100 {
		t.Errorf("concurrent: %+v (each pod loses one of its 2 cores while loading)", c)
	}
}

// TestStaggerQueuesAcrossUpdates: when a round of reloads outlasts the
// interval between updates, the next round waits for the lease instead
// of taking a second pod out.
func TestStaggerQueuesAcrossUpdates(t *testing.T) {
	p := params("staggered")
	p.Pods, p.Updates, p.Reload = 30, 96, 60*time.Second // 30 × 71 s > 15 min
	if r := Simulate(p); r.MinPods != 29 {
		t.Errorf("min pods %d, want 29", r.MinPods)
	}
}

// TestDemandShape: mean 1, maximum the peak factor, at the peak hour.
func TestDemandShape(t *testing.T) {
	for _, peak := range []float64{1, 2, 3, 5} {
		s := demandShape(peak, 14)
		sum, top, at := 0.0, 0.0, 0
		for i, v := range s {
			sum += v
			if v > top {
				top, at = v, i
			}
		}
		if mean := sum / float64(len(s)); math.Abs(mean-1) > 1e-6 || math.Abs(top-peak) > 0.01 || (peak > 1 && at != 14*3600) {
			t.Errorf("peak %v: mean %v max %v at %d s", peak, mean, top, at)
		}
	}
}

// TestReplicas: the formula's pods carry the peak at the target
// utilisation with one pod out.
func TestReplicas(t *testing.T) {
	// 8.64 M a day = 100/s mean, 300/s peak; 50/s a pod at 0.75 → 8, plus one.
	if n := Replicas(8.64e6, 3, 50, 0.75); n != 9 {
		t.Errorf("replicas %d, want 9", n)
	}
}
