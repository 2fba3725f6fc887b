package scan

import (
	"context"
	"log/slog"
	"os"
	"syscall"
	"testing"
	"time"
)

// BenchmarkDoWatched is the dispatcher's own cost per job for a client
// whose connection carries a hang-up probe, as every gateway connection
// does: a File job on a backend that answers at once, so that what the
// dispatcher spends around the engine is all there is to see. It reports
// the process's CPU time per job (user+system, all threads) beside the
// wall time: a watcher's goroutine and ticker cost CPU, not latency.
// Compare two trees side by side (see the issue 30 report), never a lone
// absolute figure.
func BenchmarkDoWatched(b *testing.B) {
	d := NewDispatcher(okBackend{}, slog.New(slog.DiscardHandler), Options{Capacity: 64})
	f, err := os.CreateTemp(b.TempDir(), "job")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	a, _ := socketPair(b)
	ctx, stop := withProbe(context.Background(), a)
	defer stop()
	job := Job{Client: "bench", Kind: File, File: f}
	b.SetParallelism(4)
	cpu := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := d.Do(ctx, job); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
