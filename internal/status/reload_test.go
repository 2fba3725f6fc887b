package status

import (
	"regexp"
	"testing"
	"time"
)

func TestNotifyReloading(t *testing.T) {
	c := notifySocket(t)
	NotifyReloading()
	msg := next(t, c, "RELOADING=1", time.Second)
	if !regexp.MustCompile(`(?m)^MONOTONIC_USEC=[1-9][0-9]*$`).MatchString(msg) {
		t.Errorf("reloading datagram %q, want RELOADING=1 with MONOTONIC_USEC", msg)
	}
}
