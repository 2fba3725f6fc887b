package cli

import (
	"context"
	"fmt"
	"io"

	"clamgate/internal/identity"
)

// tokenCmd is `clamgate token new POLICY`: a new bearer token for the
// HTTP front, and the line that lets it choose POLICY. Only the hash goes
// into the configuration; the token is shown once.
func tokenCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	subs := []string{"new"}
	switch {
	case len(args) > 0 && isHelp(args[0]):
		fmt.Fprint(stdout, groupUsage(ctx, "token", subs))
		return 0
	case len(args) == 0 || args[0] != "new":
		fmt.Fprint(stderr, groupUsage(ctx, "token", subs))
		return exitError
	}
	fs := newFlags("token new", "POLICY")
	if code, ok := parseFlags(fs, args[1:], stdout, stderr); !ok {
		return code
	}
	if fs.NArg() != 1 || fs.Arg(0) == "" {
		fs.SetOutput(stderr)
		fs.Usage()
		return exitError
	}
	token, hash := identity.NewToken()
	fmt.Fprintf(stdout, "token: %s\n\n# add to [policy.%s] (or append the hash to its list), then reload:\ntokens_sha256 = [\"%s\"]\n", token, fs.Arg(0), hash)
	return 0
}
