package clamdproto

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"clamgate/internal/connfuzz"
	"clamgate/internal/policy"
	"clamgate/internal/scan"
)

// drainDispatcher stands in for the engine in the fuzzer only: it consumes
// streams like clamd and answers clean, so the fuzzer exercises the front's
// own parsing of whatever a client sends.
type drainDispatcher struct{}

func (drainDispatcher) Do(_ context.Context, job scan.Job) (scan.Result, error) {
	if job.Data != nil {
		if _, err := io.Copy(io.Discard, job.Data); err != nil {
			return scan.Result{}, err
		}
		return scan.ParseVerdict(scan.StreamObject, "stream: OK")
	}
	return scan.Result{Reply: "PONG"}, nil
}

func FuzzServeConn(f *testing.F) {
	for _, s := range []string{
		"zPING\x00", "nINSTREAM\n\x00\x00\x00\x01a\x00\x00\x00\x00",
		"zIDSESSION\x00zPING\x00zINSTREAM\x00\x00\x00\x00\x02ab\x00\x00\x00\x00zEND\x00",
		"zIDSESSION\x00PING\n", "zSCAN /etc/passwd\x00", "zFILDES\x00x", "zSHUTDOWN\x00",
	} {
		f.Add([]byte(s))
	}
	srv := &Server{Dispatcher: drainDispatcher{}, Log: slog.New(slog.DiscardHandler), ReadTimeout: time.Second}
	pol := &policy.Policy{Name: "fuzz", Commands: policy.DefaultCommands, MaxStream: 1 << 20}
	f.Fuzz(func(t *testing.T, in []byte) { connfuzz.Serve(t, srv, pol, in) })
}
