package clamdproto

import (
	"context"
	"strings"

	"clamgate/internal/pathscan"
)

// scanPath serves one path command (SCAN, CONTSCAN, MULTISCAN,
// ALLMATCHSCAN) through the shared walk: the gateway opens every file
// itself, beneath the client's root, and hands clamd only descriptors; the
// replies use the client's paths exactly as clamd would print them.
func (c *conn) scanPath(ctx context.Context, cmd Command) {
	req := pathscan.Request{Policy: c.pol, Identity: c.peer.Cert, Protocol: "clamd", Path: cmd.Arg,
		// ALLMATCHSCAN walks a tree like SCAN: clamd stops at the first
		// infected file (all matches apply within a file).
		StopAtFirst: cmd.Name == CmdScan || cmd.Name == CmdAllMatchScan,
		OKIfEmpty:   cmd.Name != CmdMultiScan}
	c.srv.walker().Walk(ctx, req, func(l pathscan.Line) {
		switch {
		case l.Refused:
			c.refuse(cmd, strings.TrimSuffix(l.Text, ". ERROR"))
		case l.Err != nil:
			c.reply(failure(l.Path, l.Err))
		default:
			c.reply(l.Text)
		}
	})
}
