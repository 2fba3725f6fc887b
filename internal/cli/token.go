package cli

import (
	"fmt"
	"io"
	"strings"

	"clamgate/internal/identity"
)

// tokenCmd is `clamgate token new POLICY`: a new bearer token for the
// HTTP front, and the line that lets it choose POLICY. Only the hash goes
// into the configuration; the token is shown once.
func tokenCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 || args[0] != "new" || args[1] == "" || strings.HasPrefix(args[1], "-") {
		fmt.Fprintln(stderr, "usage: clamgate token new POLICY")
		return 2
	}
	token, hash := identity.NewToken()
	fmt.Fprintf(stdout, "token: %s\n\n# add to [policy.%s] (or append the hash to its list), then reload:\ntokens_sha256 = [\"%s\"]\n", token, args[1], hash)
	return 0
}
