package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// cgroupRoot is where the hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// newCgroup creates a memory cgroup for clamd beneath clamgate's own (so
// that whatever accounts for clamgate, a systemd unit for one, still
// accounts for clamd) and caps it at max bytes: on cgroup v2 when its
// memory controller can be had there, else on a v1 memory hierarchy (the
// hybrid layout of this host and many others).
func newCgroup(max int64) (string, error) {
	if os.Geteuid() != 0 {
		return "", errors.New("clamgate is not root: it cannot create a cgroup")
	}
	own, err := ownCgroups()
	if err != nil {
		return "", err
	}
	name := "clamgate-engine-" + strconv.Itoa(os.Getpid())
	var errs []error
	if p, ok := own[""]; ok && isFile(filepath.Join(cgroupRoot, "cgroup.controllers")) {
		dir, err := createIn(filepath.Join(cgroupRoot, p), name, "memory.max", max, enableMemoryV2)
		if err == nil {
			return dir, nil
		}
		errs = append(errs, fmt.Errorf("cgroup v2: %w", err))
	}
	if p, ok := own["memory"]; ok {
		dir, err := createIn(filepath.Join(cgroupRoot, "memory", p), name, "memory.limit_in_bytes", max, nil)
		if err == nil {
			return dir, nil
		}
		errs = append(errs, fmt.Errorf("cgroup v1: %w", err))
	}
	if len(errs) == 0 {
		return "", errors.New("no cgroup v2 and no v1 memory hierarchy")
	}
	return "", errors.Join(errs...)
}

// ownCgroups maps each hierarchy's controller ("" for v2) to clamgate's path in it.
func ownCgroups() (map[string]string, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.SplitN(sc.Text(), ":", 3)
		if len(fs) != 3 {
			continue
		}
		for _, c := range strings.Split(fs[1], ",") {
			out[c] = fs[2]
		}
	}
	return out, sc.Err()
}

func createIn(parent, name, limitFile string, max int64, prepare func(string) error) (string, error) {
	if prepare != nil {
		if err := prepare(parent); err != nil {
			return "", err
		}
	}
	dir := filepath.Join(parent, name)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, limitFile), []byte(strconv.FormatInt(max, 10)), 0); err != nil {
		_ = os.Remove(dir)
		return "", err
	}
	return dir, nil
}

// enableMemoryV2 delegates the memory controller to parent's children; the
// kernel refuses when parent itself holds processes, as a service's
// cgroup does unless it is split.
func enableMemoryV2(parent string) error {
	sub, err := os.ReadFile(filepath.Join(parent, "cgroup.subtree_control"))
	if err != nil {
		return err
	}
	if slices.Contains(strings.Fields(string(sub)), "memory") {
		return nil
	}
	if err := os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte("+memory"), 0); err != nil {
		return fmt.Errorf("enable the memory controller in %s: %w", parent, err)
	}
	return nil
}

// removeCgroup waits briefly for the exited clamd to leave the cgroup.
func removeCgroup(dir string) error {
	var err error
	for range 50 {
		if err = os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

func isFile(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
