package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"clamgate/bench/benchenv"
	"clamgate/internal/clamd"
	"clamgate/internal/rss"
)

// Env is a gateway process in front of a real clamd, configured like a
// host: a clamd-protocol socket for an authorised client (root), ICAP on
// loopback TCP, a milter socket any local user can open, and /metrics.
type Env struct {
	Dir    string
	Target Target
	clamd  *benchenv.Clamd
	gw     *benchenv.Process
	client *clamd.Client // the authorised client
	attack string        // this program, where the attacker can run it
	uid    int
	gid    int
	fds    int    // the gateway's descriptors when it started
	made   string // the attacker's account, when StartEnv created it: Stop removes it
}

// gatewayTOML is the gateway's configuration; %[1]s is the run directory.
const gatewayTOML = `
[backend]
address = "unix:%[1]s/clamd.sock"
timeout = "30s"

[server]
log_level = "warn"
http = "tcp:%[2]s"

[[listener]]
address = "unix:%[1]s/gw/clamd.sock"
policy = "trusted"
mode = "0666"

[[listener]]
address = "unix:%[1]s/gw/open.sock"
policy = "open"
mode = "0666"

[[listener]]
address = "tcp:%[3]s"
protocol = "icap"
policy = "proxy"

[[listener]]
address = "unix:%[1]s/gw/milter.sock"
protocol = "milter"
policy = "mta"
mode = "0666"

[policy.trusted]
users = ["root"]

[policy.open]

[policy.proxy]

[policy.mta]
`

// StartEnv runs clamd and the gateway binary gateway in a new directory;
// attackers will run self (this program) as user.
func StartEnv(gateway, self, user string) (*Env, error) {
	uid, gid, created, err := ensureUser(user)
	e := &Env{uid: uid, gid: gid}
	if created {
		e.made = user
	}
	if err != nil {
		e.Stop()
		return nil, err
	}
	dir, err := os.MkdirTemp("", "cgattack")
	if err != nil {
		e.Stop()
		return nil, err
	}
	e.Dir, e.attack = dir, filepath.Join(dir, "attack")
	if err := e.start(gateway, self); err != nil {
		e.Stop()
		return nil, err
	}
	return e, nil
}

func (e *Env) start(gateway, self string) error {
	// The attacker must reach the sockets and run this program.
	if err := os.Chmod(e.Dir, 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(e.Dir, "gw"), 0o755); err != nil {
		return err
	}
	if err := copyFile(self, e.attack); err != nil {
		return err
	}
	var err error
	if e.clamd, err = benchenv.StartClamd(e.Dir, "", "MaxThreads 10"); err != nil {
		return err
	}
	e.Target = Target{Clamd: filepath.Join(e.Dir, "gw/clamd.sock"), Milter: filepath.Join(e.Dir, "gw/milter.sock"),
		ClamdOpen: filepath.Join(e.Dir, "gw/open.sock"),
		ICAP:      freePort(), HTTP: freePort()}
	conf := filepath.Join(e.Dir, "clamgate.toml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(gatewayTOML, e.Dir, e.Target.HTTP, e.Target.ICAP)), 0o644); err != nil {
		return err
	}
	if e.gw, err = benchenv.StartGateway(e.Dir, gateway, nil, []string{"unix:" + e.Target.Clamd}, "--config", conf); err != nil {
		return err
	}
	e.client, _ = clamd.New("unix:"+e.Target.Clamd, 30*time.Second)
	if err := benchenv.WaitPing(e.client, time.Minute); err != nil {
		return err
	}
	e.fds = countFDs(e.gw.PID())
	return nil
}

// Stop ends the gateway and clamd and removes the directory (kept, and
// named, when keep is set: BENCH_KEEP=1).
func (e *Env) Stop() {
	if e.gw != nil {
		e.gw.Stop()
	}
	if e.clamd != nil {
		e.clamd.Stop()
	}
	if e.made != "" { // the attackers have stopped with their phases
		if out, err := exec.Command("userdel", e.made).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "userdel %s: %v: %s\n", e.made, err, out)
		}
		if exec.Command("getent", "group", e.made).Run() == nil {
			_ = exec.Command("groupdel", e.made).Run()
		}
	}
	if e.Dir == "" {
		return
	}
	if os.Getenv("BENCH_KEEP") != "" {
		fmt.Fprintln(os.Stderr, "kept", e.Dir)
		return
	}
	os.RemoveAll(e.Dir)
}

// Phase is what was measured while one attack ran (or none).
type Phase struct {
	Attack      string
	Ping, Eicar []time.Duration
	Failed      int    // probes answered wrongly or not at all
	FirstFail   string // the first of them
	RSSBase     int64
	RSSPeak     int64
	FDBase      int
	FDPeak      int
	Exceeded    string // the bound that made the run stop early
}

// Limits stop an attack early, to spare the machine a gateway that does
// not hold its bounds: the attack's own bounds (tests), or only a safety
// net (the load check, which shows how far it goes).
type Limits struct {
	OwnBounds bool
}

// safety bounds a gateway that holds none of its own.
const (
	safetyRSS = 768 << 20
	safetyFDs = 15000
)

// Measure runs attack a (none when nil) from the unprivileged user for d,
// while the authorised client probes with PING and an EICAR INSTREAM.
func (e *Env) Measure(a *Attack, d time.Duration, lim Limits) Phase {
	e.settle()
	pid := e.gw.PID()
	ph := Phase{Attack: "none", RSSBase: rssOf(pid), FDBase: countFDs(pid)}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var exceeded atomic.Value
	maxRSS, maxFDs := int64(safetyRSS), safetyFDs
	if a != nil {
		ph.Attack = a.Name
		stop, err := e.runAttacker(a.Name)
		if err != nil {
			ph.Failed, ph.FirstFail = 1, "attacker: "+err.Error()
			return ph
		}
		defer stop()
		if lim.OwnBounds {
			maxRSS, maxFDs = a.MaxRSS, a.MaxFDs
		}
	}
	watched := e.watch(ctx, &ph, maxRSS, maxFDs, &exceeded, cancel)
	if a != nil {
		sleep(ctx, 2*time.Second) // let the attack engage before probing
	}
	e.probe(ctx, &ph)
	<-ctx.Done()
	<-watched
	if v, ok := exceeded.Load().(string); ok {
		ph.Exceeded = v
	}
	return ph
}

// settle waits (up to a minute) until the gateway has let go of a
// previous attack's connections, so that each phase starts from the same
// state.
func (e *Env) settle() {
	for range 200 {
		if countFDs(e.gw.PID()) <= e.fds+4 {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// watch samples the gateway's RSS and descriptors into ph's peaks until
// ctx ends, and ends the phase as soon as one passes its limit. The
// returned channel closes once the peaks are final.
func (e *Env) watch(ctx context.Context, ph *Phase, maxRSS int64, maxFDs int, exceeded *atomic.Value, stop func()) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.sample(ctx, ph, maxRSS, maxFDs, exceeded, stop)
	}()
	return done
}

func (e *Env) sample(ctx context.Context, ph *Phase, maxRSS int64, maxFDs int, exceeded *atomic.Value, stop func()) {
	pid := e.gw.PID()
	for ctx.Err() == nil {
		rss, fds := rssOf(pid), countFDs(pid)
		ph.RSSPeak, ph.FDPeak = max(ph.RSSPeak, rss), max(ph.FDPeak, fds)
		switch {
		case rss-ph.RSSBase > maxRSS:
			exceeded.Store(fmt.Sprintf("RSS grew by %.0f MiB (bound %d MiB)", mib(rss-ph.RSSBase), maxRSS>>20))
			stop()
		case fds-ph.FDBase > maxFDs:
			exceeded.Store(fmt.Sprintf("descriptors grew by %d (bound %d)", fds-ph.FDBase, maxFDs))
			stop()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// probe is the authorised client: a PING and an EICAR scan, again and
// again, each of which must be answered rightly.
func (e *Env) probe(ctx context.Context, ph *Phase) {
	for ctx.Err() == nil {
		start := time.Now()
		r, err := e.client.Command(context.Background(), "PING")
		ph.Ping = append(ph.Ping, time.Since(start))
		e.check(ph, "PING", r, err, pong)
		start = time.Now()
		r, err = e.client.Instream(context.Background(), strings.NewReader(benchenv.EICAR))
		ph.Eicar = append(ph.Eicar, time.Since(start))
		e.check(ph, "EICAR", r, err, eicarFound)
		sleep(ctx, 100*time.Millisecond)
	}
}

// eicarFound is the verdict on the probe (the benchmark database names the
// signature Eicar-Test-Signature.UNOFFICIAL, a packaged one without suffix).
func eicarFound(reply string) bool {
	return strings.HasPrefix(reply, "stream: Eicar-Test-Signature") && strings.HasSuffix(reply, " FOUND")
}

func pong(reply string) bool { return reply == "PONG" }

func (e *Env) check(ph *Phase, what, reply string, err error, ok func(string) bool) {
	if err == nil && ok(reply) {
		return
	}
	if ph.Failed == 0 {
		ph.FirstFail = fmt.Sprintf("%s: %q %v", what, reply, err)
	}
	ph.Failed++
}

// runAttacker starts this program as the unprivileged user, attacking
// until the returned func stops it.
func (e *Env) runAttacker(name string) (func(), error) {
	cmd := exec.Command("setpriv", "--reuid", strconv.Itoa(e.uid), "--regid", strconv.Itoa(e.gid), "--clear-groups", e.attack, "hit",
		"-attack", name, "-clamd", e.Target.Clamd, "-clamd-open", e.Target.ClamdOpen, "-icap", e.Target.ICAP, "-milter", e.Target.Milter,
		"-http", e.Target.HTTP, "-metrics-conns", strconv.Itoa(metricsConnCount))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return func() {
		cmd.Process.Kill()
		cmd.Wait()
	}, nil
}

// ensureUser creates the attacker's account if needed and returns its uid
// and gid, and whether it created it (then Stop removes it).
func ensureUser(name string) (uid, gid int, created bool, err error) {
	if exec.Command("id", "-u", name).Run() != nil {
		if out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
			return 0, 0, false, fmt.Errorf("useradd %s: %v: %s", name, err, out)
		}
		created = true
	}
	if uid, err = idOf(name, "-u"); err != nil {
		return 0, 0, created, err
	}
	gid, err = idOf(name, "-g")
	return uid, gid, created, err
}

func idOf(name, flag string) (int, error) {
	out, err := exec.Command("id", flag, name).Output()
	if err != nil {
		return 0, fmt.Errorf("id %s %s: %v", flag, name, err)
	}
	return strconv.Atoi(strings.TrimSpace(string(out)))
}

func countFDs(pid int) int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents)
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}

// rssOf is pid's resident memory, 0 once it is gone.
func rssOf(pid int) int64 {
	n, _ := rss.Read(pid)
	return n
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// percentile of ds (sorted in place), in milliseconds.
func percentile(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return float64(ds[int(p*float64(len(ds)-1))].Microseconds()) / 1000
}
