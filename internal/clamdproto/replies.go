package clamdproto

import (
	"net"
	"sync"
	"time"
)

// Bounds of what a session's unread replies may hold in the gateway, past
// what the kernel's socket buffer took. At sessionBacklog the session
// accepts no more commands and ends; a command already running may add
// lines up to sessionHardCap, and past it they are dropped (the session
// then ends with an ERROR, so no client reads a cut reply as whole).
// The queue and the write in flight hold at most sessionHardCap bytes
// together (their two buffers, at most twice that allocated), so a user at
// max_connections_per_uid (default 128) holds at most 32 MiB of replies.
const (
	sessionBacklog = 64 << 10
	sessionHardCap = 128 << 10
)

// replyQueue writes a session's replies from its own goroutine, so that
// the session keeps reading the client's next commands while earlier
// replies wait for the client to read them. A client that writes a long
// session before reading (clamd's own test suite does) would otherwise
// fill the socket's buffer, block the gateway's write, stop its reads,
// and block the client's writes: both sides stuck until a timeout.
type replyQueue struct {
	c       net.Conn
	timeout time.Duration // each write's deadline
	mu      sync.Mutex
	more    *sync.Cond
	buf     []byte    // replies not yet handed to the kernel
	writing int       // bytes of the write in progress
	final   time.Time // set when the session ends early: the last deadline
	closed  bool      // no more replies will be added
	dropped bool      // a reply did not fit
	err     error     // a write failed: the client is gone or stuck
	done    chan struct{}
}

func newReplyQueue(c net.Conn, timeout time.Duration) *replyQueue {
	q := &replyQueue{c: c, timeout: timeout, done: make(chan struct{})}
	q.more = sync.NewCond(&q.mu)
	go q.run()
	return q
}

// add queues one reply; false when it was dropped, because the client has
// left too much unread or writing to it failed.
func (q *replyQueue) add(p []byte) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil || q.closed || len(q.buf)+q.writing+len(p) > sessionHardCap {
		q.dropped = true
		return false
	}
	q.buf = append(q.buf, p...)
	q.more.Signal()
	return true
}

// stuck says the session must end: the client left more than
// sessionBacklog of replies unread (past what the kernel's buffer took),
// a reply was dropped, or writing failed.
func (q *replyQueue) stuck() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.err != nil || q.dropped || len(q.buf)+q.writing > sessionBacklog
}

// run writes what is queued, everything queued at once, until close.
func (q *replyQueue) run() {
	defer close(q.done)
	var out []byte
	for {
		q.mu.Lock()
		for len(q.buf) == 0 && !q.closed && q.err == nil {
			q.more.Wait()
		}
		if len(q.buf) == 0 || q.err != nil {
			q.mu.Unlock()
			return
		}
		out, q.buf = q.buf, out[:0]
		q.writing = len(out)
		deadline := time.Now().Add(q.timeout)
		if !q.final.IsZero() && q.final.Before(deadline) {
			deadline = q.final
		}
		q.mu.Unlock()
		_ = q.c.SetWriteDeadline(deadline)
		_, err := q.c.Write(out)
		q.mu.Lock()
		q.writing, q.err = 0, err
		q.mu.Unlock()
	}
}

// finish adds the last reply (if any) and waits until everything queued
// is written; within d when d > 0, for a session ended early, whose client
// may never read.
func (q *replyQueue) finish(last []byte, d time.Duration) {
	q.mu.Lock()
	if last != nil && q.err == nil {
		q.buf = append(q.buf, last...) // past the bound: it is small, and the reason
	}
	if d > 0 {
		q.final = time.Now().Add(d)
		_ = q.c.SetWriteDeadline(q.final) // cuts a write already waiting
	}
	q.closed = true
	q.more.Signal()
	q.mu.Unlock()
	<-q.done
}
