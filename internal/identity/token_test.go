package identity

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"clamgate/internal/policy"
)

func TestTokens(t *testing.T) {
	tokA, hashA := NewToken()
	tokB, hashB := NewToken()
	if !strings.HasPrefix(tokA, "cg_") || tokA == tokB || len(hashA) != 64 {
		t.Fatalf("tokens %q %q, hash %q", tokA, tokB, hashA)
	}
	sum := func(h string) [32]byte { b, _ := hex.DecodeString(h); return [32]byte(b) }
	a := &policy.Policy{Name: "a", TokensSHA256: [][32]byte{sum(hashA)}}
	b := &policy.Policy{Name: "b", TokensSHA256: [][32]byte{sum(hashB), sha256.Sum256([]byte("other"))}}
	tokens := NewTokens(map[string]*policy.Policy{"a": a, "b": b, "none": {Name: "none"}})
	for _, tc := range []struct {
		token string
		want  *policy.Policy
	}{
		{tokA, a}, {tokB, b}, {"other", b}, {"", nil}, {tokA + "x", nil}, {hashA, nil},
	} {
		if got := tokens.Policy(tc.token); got != tc.want {
			t.Errorf("Policy(%q) = %v, want %v", tc.token, got, tc.want)
		}
	}
}
