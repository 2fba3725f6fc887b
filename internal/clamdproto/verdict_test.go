package clamdproto

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"clamgate/internal/policy"
	"clamgate/internal/scan"
)

// replyDispatcher stands in for a misbehaving engine: it reads the stream
// (all of it, or only its first byte) and answers a fixed reply.
type replyDispatcher struct {
	reply    string
	readOnly int // bytes of the stream read before answering; 0: all
}

func (d replyDispatcher) Do(_ context.Context, job scan.Job) (scan.Result, error) {
	if job.Data != nil {
		if d.readOnly > 0 {
			_, _ = io.ReadFull(job.Data, make([]byte, d.readOnly))
		} else if _, err := io.Copy(io.Discard, job.Data); err != nil {
			return scan.Result{}, err
		}
	}
	return scan.ParseReply(d.reply), nil
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
			srv := &Server{Dispatcher: replyDispatcher{reply: tc.reply, readOnly: tc.readOnly},
				Log: slog.New(slog.DiscardHandler), ReadTimeout: 2 * time.Second}
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

func TestIsVerdictFildes(t *testing.T) {
	for reply, want := range map[string]bool{
		"fd[12]: OK": true, "fd[12]: X FOUND": true, "fd[12]: lstat() failed ERROR": true,
		"fd[]: OK": false, "fd[x]: OK": false, "stream: OK": false, "fd[12]: OK ": false, "12]: OK": false, "fd[12: OK": false,
	} {
		if got := isVerdict(fdObject(reply), reply); got != want {
			t.Errorf("%q: %v, want %v", reply, got, want)
		}
	}
}
