package benchenv

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// Side is what one server measured, in rounds that alternate with the
// other sides' on the same machine (ABAB or ABBA), so that the machine's
// noise falls on every side alike. The benchmarks compare sides only by
// ratios of such interleaved rounds.
type Side struct {
	Name     string
	Count    int // requests answered in the measured rounds
	Errors   int
	FirstErr string
	Elapsed  time.Duration
	Rounds   []float64 // requests per second, per measured round
	lat      []time.Duration
	sorted   bool
}

// AddRound records one measured round: the latency of each answered
// request, the errors, and the round's length (until its last request ended).
func (s *Side) AddRound(lat []time.Duration, errors int, elapsed time.Duration, firstErr error) {
	s.Count += len(lat)
	s.Errors += errors
	s.Elapsed += elapsed
	s.Rounds = append(s.Rounds, float64(len(lat))/elapsed.Seconds())
	s.lat = append(s.lat, lat...)
	s.sorted = false
	if s.FirstErr == "" && firstErr != nil {
		s.FirstErr = firstErr.Error()
	}
}

// Rate is the median of the per-round rates: one disturbed round moves it
// less than it moves a mean.
func (s *Side) Rate() float64 { return median(s.Rounds) }

// Pct is the nearest-rank percentile p (0..100) of all latencies.
func (s *Side) Pct(p float64) time.Duration {
	if !s.sorted {
		slices.Sort(s.lat)
		s.sorted = true
	}
	return Percentile(s.lat, p)
}

// Mean is the mean latency.
func (s *Side) Mean() time.Duration {
	if len(s.lat) == 0 {
		return 0
	}
	var sum time.Duration
	for _, l := range s.lat {
		sum += l
	}
	return sum / time.Duration(len(s.lat))
}

// Percentile is the nearest-rank percentile p of sorted latencies.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// Ratio is a's rate over b's, with the lowest and highest ratio of the
// rounds run next to each other: the spread says how much noise there was.
type Ratio struct{ Value, Min, Max float64 }

// Compare is the ratio of two sides' rates. A side that answered nothing
// gives 0, not NaN, so that the figures stay printable and encodable.
func Compare(a, b *Side) Ratio {
	r := Ratio{Value: a.Rate() / b.Rate(), Min: math.Inf(1), Max: math.Inf(-1)}
	for i := range min(len(a.Rounds), len(b.Rounds)) {
		x := a.Rounds[i] / b.Rounds[i]
		r.Min, r.Max = min(r.Min, x), max(r.Max, x)
	}
	for _, x := range []*float64{&r.Value, &r.Min, &r.Max} {
		if math.IsNaN(*x) || math.IsInf(*x, 0) {
			*x = 0
		}
	}
	return r
}

func (r Ratio) String() string { return fmt.Sprintf("%.3f (rounds %.3f..%.3f)", r.Value, r.Min, r.Max) }

// Column is an extra figure per side, such as CPU time per request: one
// value per side, in the sides' order.
type Column struct {
	Name   string
	Values []float64
}

// Print writes the sides side by side, one row each (unit names the
// requests: "scans", "resp", "msg"), then every other side's rate and
// latency against the first's, the baseline (clamd direct, c-icap,
// clamav-milter): the one way the benchmarks report.
func Print(w io.Writer, unit string, sides []*Side, extra ...Column) {
	head := []string{"side", unit, unit + "/s", "mean ms", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"}
	for _, c := range extra {
		head = append(head, c.Name)
	}
	rows := [][]string{head}
	for i, s := range sides {
		row := []string{s.Name, fmt.Sprint(s.Count), fmt.Sprintf("%.1f", s.Rate()), ms3(s.Mean()), ms3(s.Pct(50)),
			ms3(s.Pct(90)), ms3(s.Pct(99)), ms3(s.Pct(100)), fmt.Sprint(s.Errors)}
		for _, c := range extra {
			row = append(row, fmt.Sprintf("%.2f", c.Values[i]))
		}
		rows = append(rows, row)
	}
	writeTable(w, rows)
	for _, s := range sides {
		if s.FirstErr != "" {
			fmt.Fprintf(w, "   %s: first error: %s\n", s.Name, s.FirstErr)
		}
	}
	base := sides[0]
	for _, s := range sides[1:] {
		fmt.Fprintf(w, "   %s/%s: throughput %s; added p50 %+.3f ms, mean %+.3f ms, p99 %+.3f ms\n", s.Name, base.Name,
			Compare(s, base), Ms(s.Pct(50)-base.Pct(50)), Ms(s.Mean()-base.Mean()), Ms(s.Pct(99)-base.Pct(99)))
	}
}

func writeTable(w io.Writer, rows [][]string) {
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len(c))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		b.WriteString("  ")
		for i, c := range r {
			if i == 0 {
				fmt.Fprintf(&b, " %-*s", width[i], c)
			} else {
				fmt.Fprintf(&b, " %*s", width[i], c)
			}
		}
		fmt.Fprintln(w, b.String())
	}
}

// Ms is d in milliseconds.
func Ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ms3(d time.Duration) string { return fmt.Sprintf("%.3f", Ms(d)) }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
