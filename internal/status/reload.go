package status

import (
	"fmt"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// NotifyReloading tells systemd that a configuration reload has begun;
// NotifyReady ends it. Type=notify-reload units (systemd 253 and later)
// need MONOTONIC_USEC, to tell this reload from one they asked for earlier;
// Type=notify units ignore it.
func NotifyReloading() {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	_, _ = daemon.SdNotify(false, fmt.Sprintf("%s\nMONOTONIC_USEC=%d\nSTATUS=reloading the configuration",
		daemon.SdNotifyReloading, ts.Nano()/1000))
}
