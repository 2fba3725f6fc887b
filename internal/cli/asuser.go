package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"

	"clamgate/internal/deploy"
)

// runAs is the user a check runs as. other is set when that is not this
// process's user: the check then runs in a child with the user's
// credentials, since a Go process cannot change those of one thread.
type runAs struct {
	name  string
	cred  syscall.Credential
	other bool
}

// checkUser resolves --as-user, else clamgate.service's User= (Group=,
// SupplementaryGroups= and the user's groups, as systemd gives them),
// else the current user.
func checkUser(asUser string) (runAs, error) {
	su := deploy.ServiceUser{User: asUser}
	if asUser == "" {
		var err error
		if su, err = deploy.GatewayServiceUser("/"); err != nil {
			return runAs{}, fmt.Errorf("reading clamgate.service: %w", err)
		}
	}
	if su.User == "" {
		u, err := user.LookupId(strconv.Itoa(os.Geteuid()))
		if err != nil {
			return runAs{name: strconv.Itoa(os.Geteuid())}, nil
		}
		return runAs{name: u.Username}, nil
	}
	return credentialOf(su)
}

func credentialOf(su deploy.ServiceUser) (runAs, error) {
	u, err := lookupUser(su.User)
	if err != nil {
		return runAs{}, fmt.Errorf("the service's user %s: %w", su.User, err)
	}
	gid := u.Gid
	if su.Group != "" {
		if gid, err = lookupGroup(su.Group); err != nil {
			return runAs{}, fmt.Errorf("the service's group %s: %w", su.Group, err)
		}
	}
	ids, _ := u.GroupIds()
	for _, g := range su.Supplementary {
		id, err := lookupGroup(g)
		if err != nil {
			return runAs{}, fmt.Errorf("the service's supplementary group %s: %w", g, err)
		}
		ids = append(ids, id)
	}
	cred := syscall.Credential{Uid: atou(u.Uid), Gid: atou(gid), Groups: []uint32{}}
	for _, id := range ids {
		cred.Groups = append(cred.Groups, atou(id))
	}
	return runAs{name: u.Username, cred: cred, other: int(cred.Uid) != os.Geteuid()}, nil
}

func lookupUser(name string) (*user.User, error) {
	if u, err := user.Lookup(name); err == nil {
		return u, nil
	}
	return user.LookupId(name)
}

func lookupGroup(name string) (string, error) {
	if g, err := user.LookupGroup(name); err == nil {
		return g.Gid, nil
	}
	g, err := user.LookupGroupId(name)
	if err != nil {
		return "", err
	}
	return g.Gid, nil
}

func atou(s string) uint32 {
	n, _ := strconv.ParseUint(s, 10, 32)
	return uint32(n)
}

// rerun runs clamgate itself (/proc/self/exe, which the kernel resolves
// without searching the directories above the binary) with args, as the
// user, and returns its exit code.
func (r runAs) rerun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := exec.CommandContext(ctx, "/proc/self/exe", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &r.cred}
	cmd.Dir, cmd.Stdout, cmd.Stderr = "/", stdout, stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode()
	case err != nil:
		fmt.Fprintf(stderr, "clamgate config check: running as user %s: %v\n", r.name, err)
		return exitError
	}
	return 0
}
