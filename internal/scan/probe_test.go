package scan

import (
	"context"
	"net"

	"clamgate/internal/hangup"
)

// withProbe is the probe the gateway attaches to each connection.
func withProbe(ctx context.Context, c net.Conn) (context.Context, func()) {
	return hangup.With(ctx, c, false)
}
