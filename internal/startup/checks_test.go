package startup

import (
	"context"
	"testing"

	"clamgate/internal/config"
)

// The quick start on a host without signatures runs serve --database test:
// start-up must not look for a directory named "test".
func TestEngineDatabaseTestByName(t *testing.T) {
	t.Chdir(t.TempDir())
	cfg := &config.Config{Engine: &config.Engine{Database: "test"}}
	if errs := engineDatabase(context.Background(), cfg); len(errs) != 0 {
		t.Fatalf("database = \"test\": %v", errs)
	}
	cfg.Engine.Database = t.TempDir()
	if errs := engineDatabase(context.Background(), cfg); len(errs) == 0 {
		t.Fatal("an empty directory passed the signature check")
	}
}
