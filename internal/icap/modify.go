package icap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"clamgate/internal/scan"
)

// exchange is one REQMOD or RESPMOD request being answered.
type exchange struct {
	cn    *conn
	req   *Request
	body  *body
	url   string
	limit int64
	start time.Time
	busy  bool // not scanned because the gateway was busy
}

// modify scans the encapsulated body and answers with 204, the message
// echoed back, a block page or an error.
func (cn *conn) modify(ctx context.Context, req *Request) bool {
	x := &exchange{cn: cn, req: req, url: req.URL(), start: time.Now(),
		limit: cn.pol.Limit(cn.srv.Settings.MaxObject)}
	if !req.HasBody {
		x.body = &body{eof: true}
		return x.pass("no body")
	}
	x.body = &body{limit: x.limit}
	if req.Preview > cn.srv.maxPreview() {
		// Refused before reading any of it: the preview is held in memory.
		cn.readFailed(badRequest("preview of %d bytes, more than the %d allowed", req.Preview, cn.srv.maxPreview()))
		return false
	}
	if req.Preview >= 0 {
		data, ieof, err := readPreview(cn.r, req.Preview)
		if err != nil {
			cn.readFailed(err)
			return false
		}
		x.body.preview = data
		if !ieof {
			x.body.cont, x.body.rest = cn.sendContinue, newChunkReader(cn.r)
		} else if len(data) == 0 {
			x.body.eof = true
		}
	} else {
		x.body.rest = newChunkReader(cn.r)
	}
	if cl := req.ContentLength(); x.limit > 0 && cl > x.limit {
		return x.overLimit(cl) // announced: decide before reading (or scanning) any of it
	}
	// Spool only when a clean verdict will have to echo the body: a 204
	// will not be allowed once the whole body has been read.
	if !req.Allow204 && x.body.rest != nil {
		x.body.spool = scan.NewFrontSpool(cn.srv.Settings.SpoolDir, cn.srv.Spool.Reserve(cn.pol.Name), spoolInMemory, nil)
		defer x.body.spool.Close()
	}
	return x.verdict(ctx)
}

func (cn *conn) sendContinue() error {
	cn.w.WriteString("ICAP/1.0 100 Continue\r\n\r\n")
	return cn.w.Flush()
}

// can204 reports whether a 204 may answer: the client allowed it, or the
// exchange is still inside the preview (RFC 3507 4.5 always allows it then).
func (x *exchange) can204() bool {
	return x.req.Allow204 || x.body.cont != nil || (x.req.Preview >= 0 && x.body.rest == nil)
}

// inStep reports whether the connection can carry another request: the
// body was read to its end, or the client is waiting after its preview.
func (x *exchange) inStep() bool { return x.body.eof || x.body.cont != nil || x.body.rest == nil }

func (x *exchange) verdict(ctx context.Context) bool {
	cn := x.cn
	res, err := cn.srv.Dispatcher.Do(ctx, scan.Job{
		Client: cn.pol.Name, Identity: cn.peer.Cert, Protocol: "icap", Kind: scan.Stream, Data: x.data(), Object: x.url,
	})
	switch {
	case errors.Is(x.body.clientErr, errTooBig):
		return x.overLimit(x.body.n)
	case x.body.spoolErr != nil: // not the client's fault: an error (or busy) answer, never its path
		x.busy = scan.IsBusy(x.body.spoolErr)
		return x.failed(x.body.spoolErr.Error() + causeOf(x.body.spoolErr))
	case x.body.clientErr != nil:
		cn.readFailed(x.body.clientErr)
		return false
	case err != nil:
		x.busy = scan.IsBusy(err)
		return x.failed(err.Error())
	case res.Verdict == scan.Infected:
		return x.infected(res.Threat)
	case res.Verdict == scan.Failed:
		return x.failed(res.Reply)
	}
	x.log("clean", "")
	return x.pass("clean")
}

// data is what the scan reads. A body that must be echoed is spooled whole
// first, and the scan reads the spool: a local clamd is then handed the
// spool file itself instead of a second copy of it. A body that need not be
// kept streams through as it arrives.
func (x *exchange) data() io.Reader {
	b := x.body
	if b.spool == nil {
		return b
	}
	if _, err := io.Copy(io.Discard, b); err != nil {
		return b // it fails again at once, with the client's error
	}
	r, err := b.spool.Reader()
	if err != nil {
		b.clientErr = err
		return b
	}
	return r
}

func (x *exchange) log(verdict, threat string, extra ...any) {
	level := slog.LevelDebug
	if verdict != "clean" {
		level = slog.LevelWarn
	}
	// Checked first: the line costs allocations on every clean request,
	// and Debug usually drops it.
	log := x.cn.srv.Log
	if !log.Enabled(context.Background(), level) {
		return
	}
	args := append([]any{"client", x.cn.pol.Name, "method", x.req.Method, "url", x.url,
		"verdict", verdict, "bytes", x.body.n, "duration", time.Since(x.start).Round(time.Microsecond)}, extra...)
	if threat != "" {
		args = append(args, "threat", threat)
	}
	log.Log(context.Background(), level, "icap", args...)
}

func (x *exchange) infected(threat string) bool {
	x.log("infected", threat)
	r := x.cn.respond()
	r.set("X-Infection-Found", fmt.Sprintf("Type=0; Resolution=2; Threat=%s;", threat))
	r.set("X-Virus-ID", threat)
	return x.block(r, page{Title: "Virus found", Threat: threat, URL: x.url,
		Reason: "This content contains a virus and was not delivered."})
}

func (x *exchange) failed(why string) bool {
	x.log("failed", "", "err", why)
	switch x.cn.srv.Settings.OnFailure {
	case "pass":
		return x.pass("not scanned (on_failure = pass)")
	case "block":
		return x.block(x.cn.respond(), page{Title: "Not scanned", URL: x.url,
			Reason: "This content could not be scanned for viruses and was not delivered."})
	}
	r := x.cn.respond()
	if !x.inStep() {
		r.set("Connection", "close")
	}
	code := 500
	if x.busy {
		code = 503 // the gateway refused to queue it: squid may retry elsewhere
	}
	return r.status(code) == nil && x.inStep()
}

func (x *exchange) overLimit(size int64) bool {
	x.log("too large", "", "size", size, "max_object", x.limit)
	if x.cn.srv.Settings.OverLimit == "pass" {
		x.body.unlimited()
		return x.pass("too large, not scanned (over_limit = pass)")
	}
	return x.block(x.cn.respond(), page{Title: "Too large to scan", URL: x.url,
		Reason: fmt.Sprintf("This content is larger than the %d bytes the virus scanner accepts and was not delivered.", x.limit)})
}

// block replaces the message with the 403 page.
func (x *exchange) block(r *response, p page) bool {
	if !x.inStep() {
		r.set("Connection", "close")
	}
	hdr, body := blockResponse(p)
	return r.message("res-hdr", hdr, "res-body", bytes.NewReader(body)) == nil && x.inStep()
}

// pass lets the message through unchanged: 204 when allowed, else the
// message echoed back from the spool (and the rest of the body, relayed as
// it arrives, when it was not all read).
func (x *exchange) pass(why string) bool {
	b := x.body
	if x.can204() {
		if !b.eof && b.cont == nil { // the client keeps sending: read it to stay in step
			b.spool = nil
			if _, err := io.Copy(io.Discard, b); err != nil {
				x.cn.readFailed(err)
				return false
			}
		}
		return x.cn.respond().status(204) == nil
	}
	hdrName, hdr, bodyName := "res-hdr", x.req.ResHdr, "res-body"
	if x.req.Method == "REQMOD" {
		hdrName, hdr, bodyName = "req-hdr", x.req.ReqHdr, "req-body"
	}
	if !x.req.HasBody {
		return x.cn.respond().message(hdrName, hdr, "null-body", nil) == nil
	}
	var rd io.Reader = bytes.NewReader(nil)
	if b.spool != nil {
		var err error
		if rd, err = b.spool.Reader(); err != nil {
			return x.failed("spool: " + err.Error())
		}
	}
	if !b.eof {
		b.spool = nil
		rd = io.MultiReader(rd, b)
	}
	x.cn.srv.Log.Debug("icap: echoing the message", "client", x.cn.pol.Name, "url", x.url, "why", why)
	return x.cn.respond().message(hdrName, hdr, bodyName, rd) == nil && b.eof
}
