package cli

import (
	"context"
	"os"
	"testing"
)

// TestMain lets the test binary stand in for clamgate when it re-executes
// itself (/proc/self/exe config check ... as the service's user) and when
// a test runs it as serve under another uid.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "config" || os.Args[1] == "serve") {
		os.Exit(Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
