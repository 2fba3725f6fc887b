package doctor

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"time"

	"clamgate/internal/addr"
	"clamgate/internal/tlsid"
)

func tlsCheck() check {
	return check{
		id: "tls-certificates", title: "TLS certificates parse, match their keys and are not about to expire",
		expected: "every tls: listener's and backend's files usable for 14 days more",
		source:   "A certificate that expires, or a renewed one with the wrong key, cuts every edge gateway and icaps:// proxy off at once; the gateway keeps the old material when a new file is broken, which hides the problem until the old one expires. docs/doctor.md#tls-certificates",
		offline:  true,
		run: func(_ context.Context, h *host) verdict {
			if h.env.Config == nil {
				return pass("no configuration: nothing to check")
			}
			files := h.env.Config.TLSFiles()
			if len(files) == 0 {
				return pass("no tls: listener or backend")
			}
			keys := slices.Sorted(maps.Keys(files))
			return fold(keys, "replace the files (clamgate tls issue, or your CA's); the gateway re-reads them when they change", func(key string) (Status, string) {
				in := tlsid.Inspect(files[key], time.Now())
				switch {
				case in.Err != nil:
					return Fail, key + ": " + in.Err.Error()
				case in.Warning != "":
					return Warn, fmt.Sprintf("%s: %s, %s", key, in.Subject, in.Warning)
				}
				return Pass, fmt.Sprintf("%s: %s, until %s", key, in.Subject, in.NotAfter.Format(time.DateOnly))
			})
		},
	}
}

// tlsPorts are the ports of the gateway's tls: listeners that require
// client certificates: reachable from the network by design, and
// authenticated.
func tlsPorts(env *Env) map[int]bool {
	ports := map[int]bool{}
	if env.Config == nil {
		return ports
	}
	for _, l := range env.Config.Listeners {
		a, err := addr.Parse(l.Address)
		if err != nil || a.Network != addr.TLS || l.TLS.CA == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(a.Address); err == nil {
			if n, err := strconv.Atoi(port); err == nil {
				ports[n] = true
			}
		}
	}
	return ports
}
