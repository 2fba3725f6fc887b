package benchenv

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	lat := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{0, 1}, {10, 1}, {50, 5}, {51, 6}, {90, 9}, {99, 10}, {100, 10}} {
		if got := Percentile(lat, tc.p); got != tc.want {
			t.Errorf("Percentile(1..10, %v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("Percentile(nil) = %v", got)
	}
}

func TestCompare(t *testing.T) {
	a, b := &Side{Name: "a"}, &Side{Name: "b"}
	for i, n := range []int{10, 30, 20} { // rates 10, 30, 20 per second
		a.AddRound(make([]time.Duration, n), 0, time.Second, nil)
		b.AddRound(make([]time.Duration, 10*(i+1)), 0, time.Second, nil) // 10, 20, 30
	}
	r := Compare(a, b)
	if r.Value != 1 || r.Min != 2.0/3 || r.Max != 1.5 {
		t.Errorf("Compare = %+v, want medians 20/20 = 1, rounds 0.667..1.5", r)
	}
	if r := Compare(a, &Side{}); r.Value != 0 || r.Min != 0 || r.Max != 0 {
		t.Errorf("against an empty side: %+v, want zeros", r)
	}
}

func TestPrint(t *testing.T) {
	base, s := &Side{Name: "direct"}, &Side{Name: "gateway"}
	base.AddRound([]time.Duration{time.Millisecond, 3 * time.Millisecond}, 0, time.Second, nil)
	s.AddRound([]time.Duration{2 * time.Millisecond}, 1, time.Second, errors.New("boom"))
	var b strings.Builder
	Print(&b, "scans", []*Side{base, s}, Column{Name: "cpu", Values: []float64{1.5, 2.25}})
	for _, want := range []string{"side", "scans/s", "cpu", "direct", "2.0", "1.50", "2.25",
		"gateway: first error: boom", "gateway/direct: throughput 0.500 (rounds 0.500..0.500); added p50 +1.000 ms"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("Print output lacks %q:\n%s", want, b.String())
		}
	}
}
