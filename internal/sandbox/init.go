package sandbox

import "os"

// init turns any binary that links the engine into the helper when the
// engine starts it as one: clamgate itself (so that `clamgate engine-exec`
// needs no entry in the command line's dispatch), but also a test binary, which
// would otherwise take `engine-exec` for a stray argument and run its
// whole test suite again in the child. The environment variable makes an
// accidental match impossible.
func init() {
	if len(os.Args) > 1 && os.Args[1] == HelperCommand && os.Getenv(specEnv) != "" {
		os.Exit(HelperMain(os.Stderr))
	}
}
