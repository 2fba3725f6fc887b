package gateway

import (
	"log/slog"

	"clamgate/internal/config"
	"clamgate/internal/scan"
)

// spoolBudget is server.spool_budget, else half the free space of the
// spool directories' file systems, measured now, at start.
func spoolBudget(cfg *config.Config, log *slog.Logger) int64 {
	if cfg.SpoolBudget > 0 {
		log.Info("spool budget", "bytes", cfg.SpoolBudget, "from", "server.spool_budget")
		return cfg.SpoolBudget
	}
	dirs := []string{cfg.SpoolDir}
	if cfg.ICAP.SpoolDir != cfg.SpoolDir {
		dirs = append(dirs, cfg.ICAP.SpoolDir)
	}
	b := scan.DefaultSpoolBudget(dirs...)
	if b == 0 {
		log.Warn("spool budget: no free space measured in the spool directories: streams are bounded only by connections x max_stream", "dirs", dirs)
		return 0
	}
	log.Info("spool budget", "bytes", b, "from", "half the free space of the spool directories' file system")
	if b < cfg.StreamMaxLength {
		log.Warn("spool budget is smaller than stream_max_length: larger streams will be refused as busy", "bytes", b, "stream_max_length", cfg.StreamMaxLength)
	}
	return b
}
