package status

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// NotifyReady tells systemd (Type=notify) that the gateway serves, so that
// units ordered after it (postfix, squid) start only once scanning works.
// It reports false when not run under systemd.
func NotifyReady(log *slog.Logger) bool {
	log = orDiscard(log)
	sent, err := daemon.SdNotify(false, daemon.SdNotifyReady+"\nSTATUS=serving")
	if err != nil {
		log.Warn("cannot notify systemd", "err", err)
	}
	return sent
}

// NotifyStopping tells systemd that the stop is deliberate, so that a slow
// graceful drain is not mistaken for a hang.
func NotifyStopping() {
	_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
}

// Watchdog keeps systemd's watchdog (WatchdogSec=) fed while healthy()
// reports nil, pinging at half the interval so that one late tick is not a
// restart. When healthy fails, or blocks because the gateway is wedged, the
// pings stop and systemd restarts the gateway: a deadlock is recovered, not
// just logged. It returns when ctx ends (after a healthy call in progress),
// at once when there is no watchdog.
func Watchdog(ctx context.Context, healthy func() error, log *slog.Logger) {
	log = orDiscard(log)
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("systemd watchdog setting unusable", "err", err)
	}
	if interval <= 0 {
		return
	}
	tick := time.NewTicker(interval / 2)
	defer tick.Stop()
	var failing bool
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			failing = feed(healthy, failing, log)
		}
	}
}

// feed sends one watchdog ping if healthy, logging only on transitions so a
// long outage is one line, not one per tick. It returns whether it failed.
func feed(healthy func() error, failing bool, log *slog.Logger) bool {
	var err error
	if healthy != nil {
		err = healthy()
	}
	switch {
	case err != nil && !failing:
		log.Error("unhealthy: withholding systemd watchdog ping", "err", err)
		_, _ = daemon.SdNotify(false, "STATUS=unhealthy: "+oneLine(err))
	case err == nil && failing:
		log.Info("healthy again: resuming systemd watchdog pings")
		_, _ = daemon.SdNotify(false, "STATUS=serving")
	}
	if err == nil {
		if _, nerr := daemon.SdNotify(false, daemon.SdNotifyWatchdog); nerr != nil {
			log.Warn("cannot ping systemd watchdog", "err", nerr)
		}
	}
	return err != nil
}

// oneLine keeps an error from adding lines, which sd_notify would read as
// further assignments.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
