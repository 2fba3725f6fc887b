package engine

import (
	"testing"
	"time"
)

// TestActivations: a wait ends at an activation that follows a reload
// begun after it was armed, not at one of a reload already under way.
func TestActivations(t *testing.T) {
	var a activations
	begin := "Sat Dec  5 16:10:17 2026 -> Reading databases from /var/lib/clamav"
	activate := "Sat Dec  5 16:10:17 2026 -> Activating the newly loaded database..."
	done, cancel := a.expect()
	defer cancel()
	a.line(activate) // the end of a reload begun before: not ours
	a.line("Sat Dec  5 16:10:17 2026 -> Database correctly reloaded (1 signatures)")
	select {
	case <-done:
		t.Fatal("ended by a reload begun before the wait")
	default:
	}
	a.line(begin)
	a.line(activate)
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("not ended by the reload begun after it")
	}
	a.line(begin)
	a.line(activate) // nothing left armed: no double close
	other, stop := a.expect()
	stop()
	a.line(begin)
	a.line(activate)
	select {
	case <-other:
		t.Fatal("a cancelled wait ended")
	default:
	}
}
