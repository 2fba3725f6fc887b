package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"clamgate/internal/doctor"

	"golang.org/x/sys/unix"
)

// doctorCmd runs the security checklist on this host (or, with --root, on
// a tree) and exits 0 when all pass, 1 on a warning, 2 on a failure.
func doctorCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == doctor.ProbeArg {
		return doctor.ProbeMain(args[1:], stdout)
	}
	fs := newFlags("doctor", "")
	jsonOut := fs.Bool("json", false, "print one JSON object, for monitoring")
	cfgPath := fs.String("config", "", "clamgate configuration `FILE` (default "+doctor.DefaultConfig+", under --root)")
	root := fs.String("root", "/", "check the `DIR` tree standing for a host: units and configuration only, no process")
	timeout := fs.Duration("timeout", 5*time.Second, "longest wait for each connection doctor makes")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "clamgate doctor: unexpected argument %q\n", fs.Arg(0))
		return exitError
	}
	env := doctor.HostEnv(*root)
	env.Timeout = *timeout
	path := *cfgPath
	if path == "" {
		path = filepath.Join(*root, doctor.DefaultConfig)
	}
	env.LoadConfig(path)
	rep := doctor.Run(ctx, env)
	var err error
	if *jsonOut {
		err = doctor.WriteJSON(stdout, rep)
	} else {
		err = doctor.WriteTable(stdout, rep, colourful(stdout))
	}
	if err != nil {
		fmt.Fprintln(stderr, "clamgate doctor:", err)
		return exitError
	}
	return rep.ExitCode()
}

// colourful is true only for a terminal, and never when NO_COLOR is set.
func colourful(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
