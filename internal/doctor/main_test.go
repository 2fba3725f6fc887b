package doctor_test

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"unsafe"

	"clamgate/internal/doctor"

	"golang.org/x/sys/unix"
)

// seccompEnv makes the test binary a wrapper that installs an allow-all
// seccomp filter and NoNewPrivs on its thread, then executes its
// arguments: the filter survives exec, so the program runs with Seccomp 2,
// as under podman's profile. util-linux 2.38's setpriv cannot do this.
const seccompEnv = "DOCTOR_TEST_EXEC_SECCOMP"

// selfExe re-executes the test binary, as clamgate re-executes itself:
// the kernel resolves the magic link without searching go test's 0700
// build directory, so the probe child can run it as nobody.
const selfExe = "/proc/self/exe"

func TestMain(m *testing.M) {
	switch {
	case len(os.Args) > 1 && os.Args[1] == doctor.ProbeArg:
		os.Exit(doctor.ProbeMain(os.Args[2:], os.Stdout))
	case os.Getenv(seccompEnv) == "1":
		execUnderSeccomp(os.Args[1:])
	}
	os.Exit(m.Run())
}

func execUnderSeccomp(argv []string) {
	runtime.LockOSThread()
	allow := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW}}
	prog := unix.SockFprog{Len: uint16(len(allow)), Filter: &allow[0]}
	must := func(err error) {
		if err != nil {
			fmt.Fprintln(os.Stderr, "seccomp wrapper:", err)
			os.Exit(127)
		}
	}
	must(unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
	must(unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog)), 0, 0))
	env := []string{}
	for _, kv := range os.Environ() {
		if kv != seccompEnv+"=1" {
			env = append(env, kv)
		}
	}
	path, err := exec.LookPath(argv[0])
	must(err)
	must(syscall.Exec(path, argv, env))
}

// prober connects as other users through a re-executed test binary.
func prober() doctor.Prober {
	return doctor.ExecProber{Argv: []string{selfExe, doctor.ProbeArg}}
}
