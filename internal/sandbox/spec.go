package sandbox

import (
	"encoding/json"
	"fmt"
	"os"
)

// HelperCommand is the hidden clamgate command that applies the layers and
// execs the confined program.
const HelperCommand = "engine-exec"

// specEnv carries the Spec from the engine to the helper; the helper
// removes it before exec.
const specEnv = "CLAMGATE_SANDBOX_SPEC"

// Spec is what the helper applies, decided by the engine: each layer is
// either applied or the helper fails, so that the engine's log of missing
// layers is the truth.
type Spec struct {
	Path string   // program to exec
	Args []string // its argv, argv[0] included
	Env  []string

	// Drop makes the helper switch to UID/GID (it runs as root).
	Drop     bool
	UID, GID int
	// Caps empties the bounding and ambient sets and the capabilities:
	// the helper runs as root, or as root of its own user namespace.
	Caps bool

	Landlock bool
	ReadOnly []string // directories read (the database)
	Writable []string // directories written (the state directory)
	System   []string // files and trees read to run at all: libraries, locale, time zone
	Exec     []string // files executed: the program and its ELF interpreter

	Seccomp bool
	Cgroup  string // directory of a cgroup to join; "" for none
	Rlimits []Rlimit

	// Probe, when set, makes the helper try these accesses as the
	// confined program would (same user, groups, Landlock) and report,
	// instead of exec'ing it.
	Probe []Access
}

// Access is one thing the program must be able to do: read a file, list a
// directory, or create files in one.
type Access struct {
	Path  string
	Dir   bool
	Write bool
}

// Rlimit is one resource limit, set as both soft and hard.
type Rlimit struct {
	Name     string
	Resource int
	Value    uint64
}

func (s *Spec) encode() (string, error) {
	b, err := json.Marshal(s)
	return string(b), err
}

func specFromEnv() (*Spec, error) {
	raw, ok := os.LookupEnv(specEnv)
	if !ok {
		return nil, fmt.Errorf("%s is not set: this command is started by the engine only", specEnv)
	}
	var s Spec
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return nil, fmt.Errorf("%s: %w", specEnv, err)
	}
	return &s, nil
}
