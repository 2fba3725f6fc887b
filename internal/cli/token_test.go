package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"clamgate/internal/config"
)

// TestTokenNew: the printed line, pasted into a policy, makes the printed
// token choose it.
func TestTokenNew(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Main(context.Background(), []string{"token", "new", "app"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	m := regexp.MustCompile(`token: (cg_\S+)\n\n# add to \[policy\.app\].*\n(tokens_sha256 = \["([0-9a-f]{64})"\])\n$`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("output:\n%s", out.String())
	}
	if got := fmt.Sprintf("%x", sha256.Sum256([]byte(m[1]))); got != m[3] {
		t.Fatalf("hash %s of the token, line says %s", got, m[3])
	}
	cfg, err := config.Parse("t.toml", []byte("[backend]\naddress = \"unix:/x\"\n[[listener]]\naddress = \"tcp:127.0.0.1:1\"\nprotocol = \"http\"\npolicy = \"app\"\n[policy.app]\n"+m[2]+"\n"))
	if err != nil || len(cfg.Policies["app"].TokensSHA256) != 1 {
		t.Fatalf("config with the line: %v", err)
	}
	out.Reset()
	if code := Main(context.Background(), []string{"token", "new"}, &out, &errOut); code != 2 || out.Len() > 0 {
		t.Fatalf("token new without a policy: exit %d, printed %q", code, out.String())
	}
	out.Reset() // help, as for every command: the usage on stdout, exit 0, never a token
	if code := Main(context.Background(), []string{"token", "new", "-h"}, &out, &errOut); code != 0 ||
		!strings.HasPrefix(out.String(), "usage: clamgate token new") || strings.Contains(out.String(), "token: ") {
		t.Fatalf("token new -h: exit %d, printed %q", code, out.String())
	}
}
