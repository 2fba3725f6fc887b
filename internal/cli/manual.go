package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"clamgate/internal/config"
	"clamgate/internal/deploy"
	"clamgate/internal/manual"
)

// manualCommands are the commands clamgate(8) documents, each with the
// arguments that print its flags with -h. TestManualCoversUsage fails when
// the usage names a command this list lacks.
var manualCommands = []struct {
	args    []string
	summary string
}{
	{[]string{"serve"}, "Runs the gateway: the clamd protocol, ICAP and milter listeners in front of one clamd (an external one, or one it starts and supervises itself). With --config it reads the TOML file described in clamgate.toml(5); the flags alone build a one-policy configuration."},
	{[]string{"scan"}, "A clamdscan-like client: streams each file (or passes its descriptor with --fdpass), prints path: OK or path: NAME FOUND, and exits 0 when clean, 1 when infected, 2 on any error. A tls: gateway needs --cert, --key and --ca."},
	{[]string{"db"}, "Shows what the signature database holds on disk and what clamd has loaded, and how old it is; exits 1 when it is older than --max-age."},
	{[]string{"doctor"}, "Runs the deployment checklist on this host (or a tree standing for one) and prints a table or JSON; exits 0 when every row is ok, 1 on a warning, 2 on a failure."},
	{[]string{"deploy", "plan"}, "Shows, as unified diffs, every file the hardened deployment would write or change and every unit it would mask. Changes nothing."},
	{[]string{"deploy", "apply"}, "Writes the deployment shown by plan, keeping a backup and a manifest of every file it touches."},
	{[]string{"deploy", "rollback"}, "Restores every file apply changed, byte for byte, and unmasks what it masked."},
	{[]string{"config", "check"}, "Runs serve's start-up without serving: loads the configuration, then runs the very checks serve refuses to start on (roots opened as serve opens them, the sockets' directories, owners and ports, the engine's state directory, program and database, the watched database), as the user clamgate.service runs as (its User=, Group= and SupplementaryGroups=, or --as-user), and asks each external backend for PONG. Prints each error as file:line: key: message and exits 78, or exits 0. --offline only parses and validates."},
	{[]string{"config", "show"}, "Prints the effective configuration, every default filled in, as a file clamgate accepts."},
	{[]string{"token", "new"}, "Prints a new bearer token for the HTTP front, once, and the tokens_sha256 line that makes it choose the policy named (the configuration keeps only its SHA-256). Usage: clamgate token new POLICY."},
	{[]string{"tls", "new-ca"}, "Writes a private CA (ca.crt, ca.key) into --dir, for the TLS listeners and forwarding of a site with several hosts: a convenience, not a PKI. Refuses to overwrite a CA."},
	{[]string{"tls", "issue"}, "Issues, from the CA in --dir, a certificate and key carrying each --id (dns:, uri:, ip:, cn:), usable as a server's and a client's; an edge gateway's, a central gateway's or a proxy's."},
	{[]string{"manual"}, "Prints clamgate(8) or clamgate.toml(5) in man(7) roff, or the bash completion; the package installs what it prints."},
	{[]string{"version"}, "Prints the version, VCS revision and package version of this build."},
}

// manualCmd prints a man page (`clamgate manual 8` or `5`) or the bash
// completion (`clamgate manual completion`).
// scripts/package.sh installs what it prints.
func manualCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("manual", "8|5|completion")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() == 1 && fs.Arg(0) == "completion" {
		completion(ctx, stdout)
		return 0
	}
	if fs.NArg() != 1 || (fs.Arg(0) != "8" && fs.Arg(0) != "5") {
		fs.Usage()
		return exitError
	}
	args = fs.Args()
	page := configPage()
	if args[0] == "8" {
		page = commandPage(ctx)
	}
	fmt.Fprint(stdout, page.Render())
	return 0
}

func commandPage(ctx context.Context) manual.Page {
	var cmds []manual.Item
	for _, c := range manualCommands {
		cmds = append(cmds, manual.Item{Tag: "clamgate " + strings.Join(c.args, " "), Text: c.summary, Options: flagsOf(ctx, c.args)})
	}
	return manual.Page{
		Name: "clamgate", Section: "8", Source: "clamgate", Manual: "System Administration",
		Summary: "one hardened clamd gateway for every local ClamAV client",
		Sections: []manual.Section{
			{Heading: "Synopsis", Paras: synopsis(ctx)},
			{Heading: "Description", Paras: []string{description}},
			{Heading: "Commands", Items: cmds},
			{Heading: "Signals", Items: []manual.Item{
				{Tag: "SIGTERM, SIGINT", Text: "serve stops accepting, closes idle connections at once and gives running requests shutdown_grace to finish."},
				{Tag: "SIGHUP", Text: "serve re-reads its --config file (systemctl reload clamgate): policies, limits, weights, listeners, [icap], [milter], read_timeout and shutdown_grace apply to new requests, scans in progress finish under the old rules; backend, engine, database, log and audit settings and the http address are logged as needing a restart and keep their value. A file with errors is refused, each error logged, and the running configuration kept. Started with flags only, serve has nothing to re-read."},
			}},
			{Heading: "Files", Items: []manual.Item{
				{Tag: deploy.GatewayConf, Text: "The configuration, see clamgate.toml(5)."},
				{Tag: "/run/clamgate/", Text: "Sockets, and the managed clamd's working directory (engine/)."},
				{Tag: "/var/lib/clamav/", Text: "The signature database freshclam keeps, read by the engine."},
			}},
			{Heading: "Renamed", Paras: []string{"Old names still accepted, with a warning, until the next release (clamgate.toml(5) lists the keys):"}, Items: renamedItems("--")},
			{Heading: "Exit status", Paras: []string{"0 on success (clean, all checks ok); 1 for a finding (infected, a warning, a stale database); 2 for a usage error or a failure; 78 (EX_CONFIG, status=78/CONFIG in systemctl status) when serve or config check finds the configuration wrong or unfit for the host."}},
			{Heading: "Examples", Examples: commandExamples},
			{Heading: "See also", Paras: []string{seeAlso}},
		},
	}
}

// commandExamples are the three tasks a new administrator does first.
var commandExamples = []manual.Example{
	{Text: "Quick start: a gateway with its own sandboxed clamd (as the user clamgate-engine), one socket, metrics on loopback; then scan the EICAR test file through it (exit status 1: infected). --database test asks for the built-in EICAR-only test database, for a host whose /var/lib/clamav holds no signatures yet.",
		Code: "clamgate serve --listen unix:/run/clamgate/clamd.sock --http tcp:127.0.0.1:9310 --database test\n" +
			"clamgate scan --address unix:/run/clamgate/clamd.sock /tmp/eicar.com"},
	{Text: "Check the configuration before a reload; a reload refuses a file with any error, whole, and keeps the running configuration.",
		Code: "clamgate config check --config /etc/clamgate/clamgate.toml && systemctl reload clamgate"},
	{Text: "Replace the host's clamd daemons by one engine under a hardened unit: show every change, write it with backups and start it, check the host, and undo it all if needed.",
		Code: "clamgate deploy plan --engine unit\n" +
			"clamgate deploy apply --engine unit --activate\n" +
			"clamgate doctor\n" +
			"clamgate deploy rollback --activate"},
	{Text: "An edge host with no clamd at all: its clients keep their local sockets, and the gateway forwards every scan to two endpoints of a scanning pool over mutual TLS, with this host's certificate.",
		Code: "clamgate deploy plan --pool tls:scan1.example.org:3311 --pool tls:scan2.example.org:3311 \\\n" +
			"    --pool-cert /etc/clamgate/tls/mx1.crt --pool-key /etc/clamgate/tls/mx1.key --pool-ca /etc/clamgate/tls/ca.crt"},
}

const seeAlso = "clamgate.toml(5), clamd(8), clamd.conf(5), clamdscan(1), freshclam(1), amavisd-new(8), postconf(5), squid(8), systemd-analyze(1). The administrator's guide, per client and per topic: /usr/share/doc/clamgate/README.md and /usr/share/doc/clamgate/docs/."

const description = `clamgate lets every local ClamAV client share one clamd. It speaks clamd's own protocol (amavis, clamdscan, every clamd client library), ICAP (squid) and milter (postfix, sendmail), identifies each local client by its socket and peer credentials, and enforces what clamd cannot: per-client permissions (no client may stop or reload the shared engine; path scans only beneath the client's roots, opened by clamgate and passed to clamd as descriptors), per-client limits and fair sharing, and fail-closed verdicts. It reloads clamd when freshclam updates the database, and deploys and checks the hardened engine.`

// configExamples are small complete files: the packaged default's
// shape, and one client with its own socket and rights.
var configExamples = []manual.Example{
	{Text: "A managed engine on the host's database and one socket that only root and group clamgate can open, for streams and passed descriptors:",
		Code: "[engine]\n\n[server]\nhttp = \"tcp:127.0.0.1:9310\"\n\n" +
			"[[listener]]\naddress = \"unix:/run/clamgate/clamd.sock\"\npolicy = \"local\"\ngroup = \"clamgate\"\n\n" +
			"[policy.local]\ncommands = [\"PING\", \"VERSION\", \"INSTREAM\", \"FILDES\"]"},
	{Text: "Added to the file above: amavis on a socket of its own, in its own group (amavisd keeps no other), scanning paths beneath its temporary directory only; check the file before use with clamgate config check:",
		Code: "[[listener]]\naddress = \"unix:/run/clamgate/amavis/clamd.sock\"\npolicy = \"amavis\"\ngroup = \"amavis\"\n\n" +
			"[policy.amavis]\nroots = [\"/var/lib/amavis/tmp\"]\nallow_writable_root_ancestors = true\nusers = [\"amavis\"]\nmax_concurrent = 8"},
}

func configPage() manual.Page {
	return manual.Page{
		Name: "clamgate.toml", Section: "5", Source: "clamgate", Manual: "File Formats",
		Summary: "configuration of the clamgate gateway",
		Sections: []manual.Section{
			{Heading: "Description", Paras: []string{
				"clamgate serve --config FILE reads a TOML file (default " + deploy.GatewayConf + "). Unknown keys are errors; every error names the file, line and key. Sizes are bytes or a number with K, M or G; durations are Go durations such as 30s, 2m or 24h. clamgate config check tests a file, clamgate config show prints the effective configuration.",
				"Each key below is shown with its default (or an example, where it has none) and what it does.",
			}, Subs: manual.Reference(config.Reference)},
			{Heading: "Renamed", Paras: []string{"Each old name is still accepted until the next release; serve logs, and clamgate config check prints, a warning naming the new one."}, Items: renamedItems("")},
			{Heading: "Examples", Examples: configExamples},
			{Heading: "See also", Paras: []string{"clamgate(8), clamd.conf(5), amavisd-new(8), postconf(5), squid(8). Per client (amavis, postfix, squid): /usr/share/doc/clamgate/docs/."}},
		},
	}
}

// synopsis is the usage text, one paragraph a form of a command, so that
// --help and the page cannot differ.
func synopsis(ctx context.Context) []string {
	var paras []string
	usage := topUsage(ctx)
	usage = usage[strings.Index(usage, "usage:")+len("usage:"):]
	usage, _, _ = strings.Cut(usage, "\n\n")
	for _, l := range strings.Split(usage, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "":
		case strings.HasPrefix(l, "clamgate ") || len(paras) == 0:
			paras = append(paras, l)
		default:
			paras[len(paras)-1] += " " + l
		}
	}
	return paras
}

// flagsOf runs a command with -h and reads back the flags it prints (the
// flag package's "  -name type" line, then "    \tusage"), so the page
// shows exactly what the command accepts.
func flagsOf(ctx context.Context, args []string) []manual.Item {
	var out bytes.Buffer
	Main(ctx, append(append([]string{}, args...), "-h"), &out, &out)
	var items []manual.Item
	for _, l := range strings.Split(out.String(), "\n") {
		switch {
		case strings.HasPrefix(l, "  -"):
			name, usage, _ := strings.Cut(strings.TrimPrefix(l, "  "), "\t")
			items = append(items, manual.Item{Tag: "-" + strings.TrimSpace(name), Text: usage})
		case strings.HasPrefix(l, "    \t") && len(items) > 0:
			it := &items[len(items)-1]
			it.Text = strings.TrimSpace(it.Text + " " + strings.TrimPrefix(l, "    \t"))
		}
	}
	return items
}

// completion writes a bash completion script from the same command list
// and flag sets as clamgate(8).
func completion(ctx context.Context, w io.Writer) {
	subs := map[string][]string{}
	var top []string
	for _, c := range manualCommands {
		if !slices.Contains(top, c.args[0]) {
			top = append(top, c.args[0])
		}
		if len(c.args) > 1 {
			subs[c.args[0]] = append(subs[c.args[0]], c.args[1])
		}
	}
	fmt.Fprintf(w, "# bash completion for clamgate; generated by `clamgate manual completion`\n_clamgate() {\n")
	fmt.Fprintf(w, "\tlocal cur=${COMP_WORDS[COMP_CWORD]} cmd=${COMP_WORDS[1]} words\n")
	fmt.Fprintf(w, "\tif [ \"$COMP_CWORD\" -eq 1 ]; then\n\t\twords=%q\n", strings.Join(top, " "))
	fmt.Fprintf(w, "\telif [ \"$COMP_CWORD\" -eq 2 ] && [[ \"$cur\" != -* ]]; then\n\t\tcase $cmd in\n")
	for _, name := range slices.Sorted(maps.Keys(subs)) {
		fmt.Fprintf(w, "\t\t%s) words=%q ;;\n", name, strings.Join(subs[name], " "))
	}
	fmt.Fprintf(w, "\t\t*) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n\t\tesac\n\telse\n\t\tcase $cmd in\n")
	flags := map[string][]string{}
	for _, c := range manualCommands {
		for _, o := range flagsOf(ctx, c.args) {
			name, _, _ := strings.Cut(o.Tag, " ")
			if !slices.Contains(flags[c.args[0]], name) {
				flags[c.args[0]] = append(flags[c.args[0]], name)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(flags)) {
		fmt.Fprintf(w, "\t\t%s) words=%q ;;\n", name, strings.Join(flags[name], " "))
	}
	fmt.Fprintf(w, "\t\tesac\n\t\tif [[ \"$cur\" != -* ]]; then COMPREPLY=($(compgen -f -- \"$cur\")); return; fi\n\tfi\n")
	fmt.Fprintf(w, "\tCOMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n}\ncomplete -F _clamgate clamgate\n")
}

// renamedItems are the renames whose old name starts with a flag ("--")
// or not (keys and values), one item each: old, then new and why.
func renamedItems(flags string) []manual.Item {
	var items []manual.Item
	for _, r := range config.Renamed {
		if isFlag := strings.Contains(r.Old, " --"); isFlag == (flags != "") {
			items = append(items, manual.Item{Tag: r.Old, Text: "now " + r.New + ": " + r.Why + "."})
		}
	}
	return items
}
