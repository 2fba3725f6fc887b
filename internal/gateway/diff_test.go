package gateway_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"clamgate/internal/testenv"
)

// diffCase is one request sent to real clamd and to the gateway, whose
// replies must be the same bytes (after normalize).
type diffCase struct {
	name      string
	steps     func(tr tree) []step
	unixOnly  bool
	sortLines bool
}

func commandCases() []diffCase {
	var cases []diffCase
	plain := []string{"PING", "VERSION", "VERSIONCOMMANDS", "STATS", "DETSTATS", "FOO", "", "ping",
		"PING  ", "SCAN", "VERSION x", "END", "PINGX", "STREAM", "SESSION", "INSTREAM x"}
	for _, f := range []string{"z", "n", ""} {
		for _, c := range plain {
			cases = append(cases, diffCase{
				name:  fmt.Sprintf("%s%q", f, c),
				steps: func(tree) []step { return []step{raw(cmd(f, c))} },
			})
		}
	}
	return cases
}

// bareCases are unprefixed commands sent the way npm clamscan sends them:
// one packet, no newline, the connection left open for the reply. clamd
// takes one packet as the whole command.
func bareCases() []diffCase {
	later := func(s string) step { return step{Data: []byte(s), Delay: 100 * time.Millisecond} }
	cases := []diffCase{
		{name: "bare packet PING", steps: func(tree) []step { return []step{raw("PING")} }},
		{name: "bare packet VERSION", steps: func(tree) []step { return []step{raw("VERSION")} }},
		{name: "bare packet PING then more later", steps: func(tree) []step { return []step{raw("PING"), later("PING\n")} }},
		{name: "bare packet split", steps: func(tree) []step { return []step{raw("PI"), later("NG")} }},
		{name: "bare packet split with newline", steps: func(tree) []step { return []step{raw("VERS"), later("ION\n")} }},
		{name: "bare packet two lines", steps: func(tree) []step { return []step{raw("PING\nVERSION\n")} }},
		{name: "bare packet CRLF", steps: func(tree) []step { return []step{raw("VERSION\r\n")} }},
		{name: "bare packet NUL inside", steps: func(tree) []step { return []step{raw("PING\x00x")} }},
		{name: "bare packet newline first", steps: func(tree) []step { return []step{raw("\nPING")} }},
		{name: "bare packet SCAN split", steps: func(tr tree) []step {
			p := tr.path("eicar.com")
			return []step{raw("SCAN " + p[:len(p)-4]), later(p[len(p)-4:])}
		}},
	}
	// Bytes after a command in the same packet: clamd answers a scan with
	// an error, usually first; its reading thread writes the error while a
	// worker writes the verdict, so the two lines sometimes come the other
	// way round (seen over TCP in CI) and are compared as a set, and now
	// and then the error is lost (seen in CI: "bare SCAN then PING"), so
	// clamd is asked again before they count as different (compare). (Not
	// tested where clamd loses the error more often than not: STATS, a
	// path that does not exist.)
	for _, tc := range []struct{ name, req, target string }{
		{"zSCAN", "zSCAN %s\x00x", "eicar.com"}, {"nCONTSCAN", "nCONTSCAN %s\nx", "dir"},
		{"bare SCAN", "SCAN %s\n\n", "eicar.com"}, {"bare SCAN then PING", "SCAN %s\nPING", "eicar.com"},
		{"zMULTISCAN", "zMULTISCAN %s\x00zPING\x00", "clean.txt"}, {"bare SCAN CRLF", "SCAN %s\r\n", "eicar.com"},
	} {
		cases = append(cases, diffCase{
			name:      "garbage after " + tc.name,
			steps:     func(tr tree) []step { return []step{raw(fmt.Sprintf(tc.req, tr.path(tc.target)))} },
			sortLines: true,
		})
	}
	for _, req := range []string{"zPING\x00x", "PING\n\n", "zVERSION\x00x", "zINSTREAM\x00\x00\x00\x00\x00x"} {
		cases = append(cases, diffCase{name: fmt.Sprintf("garbage after %q", req), steps: func(tree) []step { return []step{raw(req)} }})
	}
	for _, verb := range []string{"SCAN", "CONTSCAN", "MULTISCAN"} {
		for _, target := range []string{"eicar.com", "clean.txt", "dir", "nope.txt"} {
			cases = append(cases, diffCase{
				name:      fmt.Sprintf("bare packet %s %s", verb, target),
				steps:     func(tr tree) []step { return []step{raw(verb + " " + tr.path(target))} },
				sortLines: verb == "MULTISCAN",
			}, diffCase{
				name:      fmt.Sprintf("bare packet %s %s then more later", verb, target),
				steps:     func(tr tree) []step { return []step{raw(verb + " " + tr.path(target)), later("PING\n")} },
				sortLines: verb == "MULTISCAN",
			})
		}
	}
	return cases
}

func pathCases() []diffCase {
	var cases []diffCase
	targets := []string{"clean.txt", "eicar.com", "dir", "dir/", "cleandir", "emptydir", "nope.txt",
		"with space/e icar.com", "fifo", "dir/clam.exe"}
	for _, f := range []string{"z", "n", ""} {
		for _, verb := range []string{"SCAN", "CONTSCAN", "MULTISCAN", "ALLMATCHSCAN"} {
			for _, target := range targets {
				cases = append(cases, diffCase{
					name:      fmt.Sprintf("%s%s %s", f, verb, target),
					steps:     func(tr tree) []step { return []step{raw(cmd(f, verb+" "+tr.path(target)))} },
					sortLines: verb == "MULTISCAN",
				})
			}
		}
	}
	return cases
}

func streamCases() []diffCase {
	eicar := []byte(testenv.EICAR)
	var cases []diffCase
	for _, f := range []string{"z", "n", ""} {
		cases = append(cases,
			diffCase{name: f + "INSTREAM clean", steps: func(tree) []step { return []step{{Data: instream(f, []byte("hello clean\n"))}} }},
			diffCase{name: f + "INSTREAM eicar", steps: func(tree) []step { return []step{{Data: instream(f, eicar)}} }},
			diffCase{name: f + "INSTREAM eicar split", steps: func(tree) []step {
				return []step{{Data: instream(f, eicar[:7], eicar[7:30], eicar[30:])}}
			}},
			diffCase{name: f + "INSTREAM empty", steps: func(tree) []step { return []step{{Data: instream(f)}} }},
			diffCase{name: f + "INSTREAM over limit", steps: func(tree) []step {
				return []step{{Data: []byte(cmd(f, "INSTREAM") + "\x00\xa0\x00\x01")}}
			}},
		)
	}
	return append(cases, limitCases()...)
}

// limitCases are objects past clamd's scan limits (see testenv.LimitsClamd),
// which the gateway's default on_limits answers as clamd does with
// AlertExceedsMax: a FOUND naming the limit.
func limitCases() []diffCase {
	var cases []diffCase
	for _, o := range testenv.LimitObjects() {
		cases = append(cases, diffCase{name: "zINSTREAM " + o.Name, steps: func(tree) []step {
			return []step{{Data: instream("z", o.Data)}}
		}})
	}
	return cases
}

func fildesCases() []diffCase {
	var cases []diffCase
	for _, f := range []string{"z", "n", ""} {
		for _, target := range []string{"clean.txt", "eicar.com", "dir"} {
			cases = append(cases, diffCase{
				name:     fmt.Sprintf("%sFILDES %s", f, target),
				unixOnly: true,
				steps: func(tr tree) []step {
					fd, err := os.Open(tr.path(target))
					if err != nil {
						panic(err)
					}
					return []step{raw(cmd(f, "FILDES")), {Data: []byte{0}, FD: fd}}
				},
			})
		}
	}
	return cases
}

func sessionCases() []diffCase {
	eicar := []byte(testenv.EICAR)
	return []diffCase{
		// clamd runs a session's commands on several threads whose replies
		// can interleave mid-line, so commands are spaced out: the gateway's
		// session handling is under test here, not clamd's races. Spacing
		// alone does not order clamd's replies on a loaded machine (one
		// thread's SCAN can finish after the next one's), so the replies,
		// each named by its id, are compared as a set.
		{name: "IDSESSION pipeline", unixOnly: true, sortLines: true, steps: func(tr tree) []step {
			fd, _ := os.Open(tr.path("eicar.com"))
			return spaced(
				raw("zIDSESSION\x00zPING\x00"), raw("zVERSION\x00"),
				step{Data: instream("z", eicar)},
				raw("zSCAN "+tr.path("clean.txt")+"\x00"), raw("zSCAN "+tr.path("eicar.com")+"\x00"),
				raw("zSCAN "+tr.path("nope")+"\x00"), raw("zVERSIONCOMMANDS\x00"),
				step{Data: []byte("zFILDES\x00X"), FD: fd},
				raw("zSTATS\x00"), raw("zEND\x00"),
			)
		}},
		{name: "nIDSESSION", sortLines: true, steps: func(tr tree) []step {
			return spaced(raw("nIDSESSION\nnPING\n"), raw("nSCAN "+tr.path("eicar.com")+"\n"), step{Data: instream("n", []byte("x"))}, raw("nEND\n"))
		}},
		{name: "FILDES without a descriptor", steps: func(tree) []step { return []step{raw("zFILDES\x00X")} }},
		{name: "IDSESSION FILDES without a descriptor", steps: func(tree) []step {
			return spaced(raw("zIDSESSION\x00zPING\x00"), raw("zFILDES\x00X"), raw("zPING\x00"))
		}},
		{name: "IDSESSION mixed framing", steps: func(tree) []step { return []step{raw("zIDSESSION\x00nPING\nzPING\x00nVERSION\nnEND\n")} }},
		{name: "IDSESSION END at once", steps: func(tree) []step { return []step{raw("zIDSESSION\x00zEND\x00")} }},
		{name: "IDSESSION nested", steps: func(tree) []step { return []step{raw("zIDSESSION\x00zPING\x00zIDSESSION\x00zPING\x00")} }},
		{name: "IDSESSION CONTSCAN", steps: func(tr tree) []step {
			return []step{raw("zIDSESSION\x00zPING\x00zCONTSCAN " + tr.path("eicar.com") + "\x00zPING\x00")}
		}},
		{name: "IDSESSION unknown", steps: func(tree) []step { return []step{raw("zIDSESSION\x00zPING\x00zFOO\x00zPING\x00")} }},
		{name: "IDSESSION SHUTDOWN", steps: func(tree) []step { return []step{raw("zIDSESSION\x00zPING\x00zSHUTDOWN\x00")} }},
		{name: "IDSESSION bare inside", steps: func(tree) []step {
			return []step{raw("zIDSESSION\x00"), {Data: []byte("PING\n"), Delay: 100 * time.Millisecond}}
		}},
		{name: "IDSESSION over limit", steps: func(tree) []step { return []step{raw("zIDSESSION\x00zPING\x00zINSTREAM\x00\x00\xa0\x00\x01")} }},
		{name: "bare IDSESSION", steps: func(tree) []step { return []step{raw("IDSESSION\nPING\n")} }},
	}
}

// strayFDCases send a descriptor with bytes no FILDES claims: inside a
// session clamd answers a protocol error, with the next id, once the bytes
// it came with are served, and closes; outside one it ignores it.
func strayFDCases() []diffCase {
	withFD := func(tr tree, data string) step {
		fd, err := os.Open(tr.path("clean.txt"))
		if err != nil {
			panic(err)
		}
		return step{Data: []byte(data), FD: fd}
	}
	var cases []diffCase
	for _, tc := range []struct {
		name   string
		before string // sent first, without a descriptor
		with   string // sent with the descriptor
	}{
		{"IDSESSION and its dummy byte", "", "zIDSESSION\x00\x00"}, // clamd's test_fildes_unwanted
		{"IDSESSION alone", "", "zIDSESSION\x00"},
		{"IDSESSION PING one packet", "", "zIDSESSION\x00zPING\x00"},
		{"zPING in session", "zIDSESSION\x00", "zPING\x00"},
		{"nPING in session", "nIDSESSION\n", "nPING\n"},
		{"bare byte in session", "zIDSESSION\x00", "\x00"},
		{"PING then FILDES in session", "zIDSESSION\x00", "zPING\x00zFILDES\x00\x00zEND\x00"},
		{"zPING outside a session", "", "zPING\x00"},
		{"nPING outside a session", "", "nPING\n"},
		{"bare PING outside a session", "", "PING\n"},
		{"bare byte outside a session", "", "\x00"},
	} {
		cases = append(cases, diffCase{name: "stray descriptor: " + tc.name, unixOnly: true, steps: func(tr tree) []step {
			if tc.before == "" {
				return []step{withFD(tr, tc.with)}
			}
			return spaced(raw(tc.before), withFD(tr, tc.with))
		}})
	}
	return cases
}

// TestDifferential sends the same requests to a real clamd and to the
// gateway in front of it, over unix sockets and TCP, and compares the bytes.
func TestDifferential(t *testing.T) {
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{Extra: testenv.LimitsClamd})
	tr := makeTree(t)
	// An admin policy with every command, as clamd offers them: its
	// VERSIONCOMMANDS is then clamd's (other policies' lists are narrower:
	// TestVersionCommandsAndSelfCheck).
	gwUnix, gwTCP := gatewayFor(t, clamd, fmt.Sprintf("admin = true\nroots = [%q]", tr.Root))
	var cases []diffCase
	for _, group := range [][]diffCase{commandCases(), bareCases(), pathCases(), streamCases(), fildesCases(), sessionCases(), strayFDCases()} {
		cases = append(cases, group...)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			compare(t, tc, tr, "unix", clamd.Socket, gwUnix)
			if !tc.unixOnly {
				compare(t, tc, tr, "tcp", clamd.TCPAddr, gwTCP)
			}
		})
	}
}

// compare checks that the gateway answers tc as clamd does. Where clamd
// races itself (bytes after a command, tc.sortLines: its reading thread
// and a worker both write, and now and then its error line is lost),
// clamd is asked again, a few times: the gateway's answer must be one
// that clamd gives.
func compare(t *testing.T, tc diffCase, tr tree, network, clamdAddr, gwAddr string) {
	t.Helper()
	got := normalize(exchange(t, network, gwAddr, tc.steps(tr)...), tc.sortLines)
	want := normalize(exchange(t, network, clamdAddr, tc.steps(tr)...), tc.sortLines)
	for i := 0; tc.sortLines && got != want && i < 5; i++ {
		want = normalize(exchange(t, network, clamdAddr, tc.steps(tr)...), tc.sortLines)
	}
	if got != want {
		t.Errorf("%s: gateway and clamd differ\n gateway: %q\n   clamd: %q", network, got, want)
	}
}

// TestDeliberateDifferences pins down where the gateway answers otherwise
// than clamd on purpose, always towards scanning more or refusing.
func TestDeliberateDifferences(t *testing.T) {
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	tr := makeTree(t)
	outside := testenv.TempDir(t)
	must(t, os.WriteFile(outside+"/secret.com", []byte(testenv.EICAR), 0o644))
	must(t, os.Symlink("eicar.com", tr.path("link_in")))
	must(t, os.Symlink("/eicar.com", tr.path("link_chroot")))
	must(t, os.Symlink(tr.path("eicar.com"), tr.path("link_host")))
	must(t, os.Symlink(outside+"/secret.com", tr.path("link_out")))
	gwUnix, _ := gatewayFor(t, clamd, fmt.Sprintf(`roots = [%q]`, tr.Root))
	ask := func(addr, line string) string { return string(exchange(t, "unix", addr, raw("z"+line+"\x00"))) }

	// clamd does not follow a symlink named in SCAN and answers OK without
	// scanning; the gateway scans the target when it stays inside the roots.
	if got, want := ask(clamd.Socket, "SCAN "+tr.path("link_in")), tr.path("link_in")+": OK\x00"; got != want {
		t.Errorf("clamd on symlink: %q, want %q (did clamd change?)", got, want)
	}
	if got, want := ask(gwUnix, "SCAN "+tr.path("link_in")), tr.path("link_in")+": "+testenv.EicarThreat+" FOUND\x00"; got != want {
		t.Errorf("gateway on symlink inside root: %q, want %q", got, want)
	}
	// An absolute symlink is resolved as if the root were "/": it names a
	// file inside the root, never the host's file of that name.
	if got, want := ask(gwUnix, "SCAN "+tr.path("link_chroot")), tr.path("link_chroot")+": "+testenv.EicarThreat+" FOUND\x00"; got != want {
		t.Errorf("gateway on absolute symlink: %q, want %q", got, want)
	}
	// A symlink leading out of the roots is refused, not followed; so is
	// one naming the root by its host path (inside the root, no such file).
	for _, link := range []string{"link_out", "link_host"} {
		if got := ask(gwUnix, "SCAN "+tr.path(link)); !strings.Contains(got, "Access denied") || !strings.HasSuffix(got, "ERROR\x00") {
			t.Errorf("gateway on %s: %q", link, got)
		}
	}
	// FILDES has no all-match mode, so ALLMATCHSCAN reports each file's first match.
	clamdAll := ask(clamd.Socket, "ALLMATCHSCAN "+tr.path("marked.com"))
	gwAll := ask(gwUnix, "ALLMATCHSCAN "+tr.path("marked.com"))
	if first := clamdAll[:strings.IndexByte(clamdAll, 0)+1]; gwAll != first || strings.Count(clamdAll, "FOUND") != 2 {
		t.Errorf("ALLMATCHSCAN: gateway %q, clamd %q", gwAll, clamdAll)
	}
	// Relative paths would be resolved in clamd's working directory.
	if got := ask(gwUnix, "SCAN eicar.com"); !strings.Contains(got, "Access denied") {
		t.Errorf("relative path: %q", got)
	}
}

// spaced delays every step but the first, so that clamd has answered one
// session command before the next arrives.
func spaced(steps ...step) []step {
	for i := 1; i < len(steps); i++ {
		steps[i].Delay = 30 * time.Millisecond
	}
	return steps
}
