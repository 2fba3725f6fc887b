package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Target is what an attacker may reach: every listener a local user can
// open, whatever its policy says of the user.
type Target struct {
	Clamd string // unix socket path of the clamd-protocol listener
	// ClamdOpen is a clamd-protocol listener whose policy serves any
	// local user (the attacker among them), beside the authorised one.
	ClamdOpen string
	ICAP      string // host:port
	Milter    string // unix socket path
	HTTP      string // host:port of /metrics
}

// Attack is one way of making the gateway hold resources. Run loops until
// ctx ends, reconnecting whatever the gateway closes, as a persistent
// attacker would. The bounds are what the gateway may grow by while it
// runs: a regression test fails above them, the load check reports them.
type Attack struct {
	Name, What string
	Run        func(ctx context.Context, t Target)
	MaxRSS     int64 // bytes of resident memory the gateway may gain
	MaxFDs     int   // descriptors the gateway may gain
}

// attacks is every attack the load check and the regression tests run;
// adding one is a function and a line here.
var attacks = []Attack{
	{Name: "icap-preview", What: "3 ICAP connections announce Preview: 2000000000 and send 1 MiB chunks without end",
		Run: icapPreview, MaxRSS: 64 << 20, MaxFDs: 32},
	{Name: "metrics-conns", What: "keep-alive connections to /metrics, as many as -metrics-conns (5000; the test: 1000)",
		Run: metricsConns, MaxRSS: 64 << 20, MaxFDs: 64},
	{Name: "milter-announce", What: "200 milter connections negotiate, announce a 2 MiB packet, send 512 KiB of it and wait",
		Run: milterAnnounce, MaxRSS: 64 << 20, MaxFDs: 256},
	{Name: "session-pipeline", What: "4 clamd-protocol sessions, each 20,000 zVERSION written before reading any reply, again and again",
		Run: sessionPipeline, MaxRSS: 32 << 20, MaxFDs: 16},
}

func findAttack(name string) (Attack, bool) {
	for _, a := range attacks {
		if a.Name == name {
			return a, true
		}
	}
	return Attack{}, false
}

// metricsConnCount is set by -metrics-conns.
var metricsConnCount = 1000

// each runs n copies of one connection's attack, each started again
// (after a pause, so a refusing gateway is not spun on) whenever it ends.
func each(ctx context.Context, n int, one func(ctx context.Context) error) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for ctx.Err() == nil {
				_ = one(ctx)
				sleep(ctx, 100*time.Millisecond)
			}
		})
	}
	wg.Wait()
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// dial connects, and closes the connection when ctx ends.
func dial(ctx context.Context, network, addr string) (net.Conn, func(), error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	return c, func() { stop(); c.Close() }, nil
}

func icapPreview(ctx context.Context, t Target) {
	res := "HTTP/1.1 200 OK\r\n\r\n"
	head := fmt.Sprintf("RESPMOD icap://%s/avscan ICAP/1.0\r\nHost: x\r\nPreview: 2000000000\r\n"+
		"Encapsulated: res-hdr=0, res-body=%d\r\n\r\n%s", t.ICAP, len(res), res)
	chunk := []byte(fmt.Sprintf("%x\r\n%s\r\n", 1<<20, strings.Repeat("A", 1<<20)))
	each(ctx, 3, func(ctx context.Context) error {
		c, done, err := dial(ctx, "tcp", t.ICAP)
		if err != nil {
			return err
		}
		defer done()
		go io.Copy(io.Discard, c) // a refusal, if any
		if _, err := io.WriteString(c, head); err != nil {
			return err
		}
		for {
			if _, err := c.Write(chunk); err != nil {
				return err
			}
		}
	})
}

func metricsConns(ctx context.Context, t Target) {
	each(ctx, metricsConnCount, func(ctx context.Context) error {
		c, done, err := dial(ctx, "tcp", t.HTTP)
		if err != nil {
			return err
		}
		defer done()
		r := bufio.NewReader(c)
		for ctx.Err() == nil {
			if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				return err
			}
			if err := skipResponse(r); err != nil {
				return err
			}
			sleep(ctx, time.Second) // keep-alive: hold the connection
		}
		return nil
	})
}

// skipResponse reads one HTTP response with a Content-Length or chunked
// body (what Go's server sends).
func skipResponse(r *bufio.Reader) error {
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return err
}

func milterAnnounce(ctx context.Context, t Target) {
	optneg := milterPacket('O', "\x00\x00\x00\x06\x00\x00\x01\xff\x00\x1f\xff\xff")
	big := binary.BigEndian.AppendUint32(nil, 2<<20)
	big = append(big, 'B')
	big = append(big, make([]byte, 512<<10)...)
	each(ctx, 200, func(ctx context.Context) error {
		c, done, err := dial(ctx, "unix", t.Milter)
		if err != nil {
			return err
		}
		defer done()
		if _, err := c.Write(optneg); err != nil {
			return err
		}
		if _, err := c.Write(milterPacket('M', "<a@b>\x00")); err != nil {
			return err
		}
		if _, err := c.Write(big); err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, c) // hold it until the gateway lets go
		return err
	})
}

// sessionPipeline writes whole sessions without reading a reply, so that
// the gateway must either read on and hold replies, or stop reading.
func sessionPipeline(ctx context.Context, t Target) {
	session := append([]byte("zIDSESSION\x00"), bytes.Repeat([]byte("zVERSION\x00"), 20000)...)
	each(ctx, 4, func(ctx context.Context) error {
		c, done, err := dial(ctx, "unix", t.ClamdOpen)
		if err != nil {
			return err
		}
		defer done()
		if _, err := c.Write(session); err != nil {
			return err
		}
		sleep(ctx, 3*time.Second) // never read: the gateway must end it
		return nil
	})
}

func milterPacket(code byte, data string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)+1))
	return append(append(b, code), data...)
}
