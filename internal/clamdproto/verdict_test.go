package clamdproto

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"clamgate/internal/policy"
	"clamgate/internal/scan"
)

// replyBackend stands in for a misbehaving engine behind the real
// dispatcher: it answers every scan with a fixed reply.
type replyBackend struct{ reply string }

func (b replyBackend) Instream(_ context.Context, r io.Reader) (string, error) {
	_, err := io.Copy(io.Discard, r)
	return b.reply, err
}
func (b replyBackend) Fildes(context.Context, *os.File) (string, error) { return b.reply, nil }
func (b replyBackend) Command(context.Context, string) (string, error)  { return b.reply, nil }

// earlyDispatcher answers after reading only the stream's first byte, as
// no real dispatcher does (it spools the whole stream first): the front's
// own check that a verdict covers the whole stream.
type earlyDispatcher struct{ reply string }

func (d earlyDispatcher) Do(_ context.Context, job scan.Job) (scan.Result, error) {
	_, _ = io.ReadFull(job.Data, make([]byte, 1))
	return scan.ParseVerdict(scan.StreamObject, d.reply)
}

// A backend reply that is not a well-formed verdict for the whole stream
// reaches the client as ERROR, never relayed.
func TestBackendReplyValidated(t *testing.T) {
	const refused = "stream: clamd sent a reply that is not a verdict. ERROR\x00"
	tests := []struct {
		name, reply string
		readOnly    int
		want        string
	}{
		{"clean", "stream: OK", 0, "stream: OK\x00"},
		{"found", "stream: Eicar-Test-Signature FOUND", 0, "stream: Eicar-Test-Signature FOUND\x00"},
		{"error", "stream: Can't allocate memory ERROR", 0, "stream: Can't allocate memory ERROR\x00"},
		{"size limit", SizeLimitReply, 0, SizeLimitReply + "\x00"},
		{"no prefix", "OK", 0, refused},
		{"other name", "fd[3]: OK", 0, refused},
		{"lowercase", "stream: ok", 0, refused},
		{"garbage", "\x7fELF", 0, refused},
		{"empty", "", 0, refused},
		{"two lines", "stream: OK\nstream: OK", 0, refused},
		{"found without name", "stream:  FOUND", 0, refused},
		{"early clean", "stream: OK", 1, "stream: clamd answered before the end of the stream. ERROR\x00"},
		{"early error", "stream: Can't allocate memory ERROR", 1, "stream: Can't allocate memory ERROR\x00"},
	}
	pol := &policy.Policy{Name: "t", Commands: policy.DefaultCommands, MaxStream: 1 << 20}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var d Dispatcher = scan.NewDispatcher(replyBackend{tc.reply}, slog.New(slog.DiscardHandler), scan.Options{})
			if tc.readOnly > 0 {
				d = earlyDispatcher{tc.reply}
			}
			srv := &Server{Dispatcher: d, Log: slog.New(slog.DiscardHandler), ReadTimeout: 2 * time.Second}
			client, server := net.Pipe()
			go func() {
				defer server.Close()
				srv.ServeConn(context.Background(), context.Background(), server, pol, policy.Peer{})
			}()
			_ = client.SetDeadline(time.Now().Add(5 * time.Second))
			go func() { _, _ = client.Write([]byte("zINSTREAM\x00\x00\x00\x00\x04data\x00\x00\x00\x00")) }()
			got, _ := io.ReadAll(client)
			if string(got) != tc.want {
				t.Errorf("backend said %q: client got %q, want %q", tc.reply, got, tc.want)
			}
		})
	}
}
