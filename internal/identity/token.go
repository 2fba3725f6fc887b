package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"maps"
	"slices"

	"clamgate/internal/policy"
)

// Tokens finds the policy an HTTP bearer token belongs to. Policies keep
// only tokens' SHA-256: the token is hashed and compared with every stored
// hash, each in constant time and all of them every time, so that neither
// the answer's timing nor the configuration file gives a token away.
type Tokens struct {
	hashes []tokenHash
}

type tokenHash struct {
	sum [32]byte
	pol *policy.Policy
}

// NewTokens gathers the tokens of policies.
func NewTokens(policies map[string]*policy.Policy) *Tokens {
	t := &Tokens{}
	for _, name := range slices.Sorted(maps.Keys(policies)) {
		for _, h := range policies[name].TokensSHA256 {
			t.hashes = append(t.hashes, tokenHash{h, policies[name]})
		}
	}
	return t
}

// Policy is the policy token chooses, nil when it chooses none.
func (t *Tokens) Policy(token string) *policy.Policy {
	sum := sha256.Sum256([]byte(token))
	var found *policy.Policy
	for _, h := range t.hashes {
		if subtle.ConstantTimeCompare(sum[:], h.sum[:]) == 1 && found == nil {
			found = h.pol
		}
	}
	return found
}

// NewToken makes a bearer token (256 random bits) and the hash a policy's
// tokens_sha256 stores for it.
func NewToken() (token, hash string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	token = "cg_" + base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(token))
	return token, hex.EncodeToString(sum[:])
}
