package httpapi_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"clamgate/internal/testenv"
)

// pyClient uploads argv[3] raw with http.client and prints the answer.
const pyClient = `
import http.client, sys
host, port = sys.argv[1].rsplit(":", 1)
c = http.client.HTTPConnection(host, int(port), timeout=30)
with open(sys.argv[3], "rb") as f:
    c.request("POST", "/v1/scan?name=" + sys.argv[3].rsplit("/", 1)[-1], body=f,
              headers={"Authorization": "Bearer " + sys.argv[2], "Content-Type": "application/octet-stream"})
r = c.getresponse()
print(r.status)
print(r.read().decode())
`

// nodeClient uploads argv[3] as a multipart form with fetch and prints
// the answer.
const nodeClient = `
const fs = require("fs");
const [addr, token, file] = process.argv.slice(1);
const form = new FormData();
form.append("file", new Blob([fs.readFileSync(file)]), require("path").basename(file));
fetch("http://" + addr + "/v1/scan", {method: "POST", body: form, headers: {Authorization: "Bearer " + token}})
  .then(async r => { console.log(r.status); console.log(await r.text()); })
  .catch(e => { console.error(e); process.exit(1); });
`

// TestRealClients: curl (HTTP/1.1 raw and multipart, and h2c with prior
// knowledge), Python's http.client and Node's fetch each upload EICAR and
// a clean file with a bearer token, and so does the Go client oapi-codegen
// generates from openapi.json.
func TestRealClients(t *testing.T) {
	a := startAPI(t, testenv.ClamdOptions{}, "")
	dir := t.TempDir()
	eicar, clean := filepath.Join(dir, "eicar.com"), filepath.Join(dir, "clean.txt")
	os.WriteFile(eicar, []byte(testenv.EICAR), 0o644)
	os.WriteFile(clean, randomBytes(100<<10), 0o644)
	url := "http://" + a.tokened + "/v1/scan"
	auth := "Authorization: Bearer " + tokenApp
	clients := map[string]func(file string) []string{
		"curl raw": func(f string) []string {
			return []string{"curl", "-sS", "-w", "\n%{http_code}", "-H", auth, "--data-binary", "@" + f, url + "?name=" + filepath.Base(f)}
		},
		"curl multipart": func(f string) []string {
			return []string{"curl", "-sS", "-w", "\n%{http_code}", "-H", auth, "-F", "file=@" + f, url}
		},
		"curl h2c": func(f string) []string {
			return []string{"curl", "-sS", "--http2-prior-knowledge", "-w", "\n%{http_code} %{http_version}", "-H", auth, "-F", "file=@" + f, url}
		},
		"python": func(f string) []string { return []string{"python3", "-c", pyClient, a.tokened, tokenApp, f} },
		"node":   func(f string) []string { return []string{"node", "-e", nodeClient, a.tokened, tokenApp, f} },
	}
	for name, argv := range clients {
		t.Run(name, func(t *testing.T) {
			if _, err := exec.LookPath(argv("")[0]); err != nil {
				testenv.MissingPeer(t, argv("")[0], "scripts/install-deps.sh --test")
			}
			for file, want := range map[string]string{eicar: "infected", clean: "clean"} {
				cmd := argv(file)
				out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput()
				if err != nil {
					t.Fatalf("%s: %v\n%s", cmd[0], err, out)
				}
				body, status := splitStatus(string(out))
				if !strings.HasPrefix(status, "200") || (name == "curl h2c" && status != "200 2") {
					t.Fatalf("%s: status %q: %s", filepath.Base(file), status, body)
				}
				var res struct {
					Objects []struct{ Name, Verdict string }
				}
				if err := json.Unmarshal([]byte(body), &res); err != nil || len(res.Objects) != 1 ||
					res.Objects[0].Verdict != want || res.Objects[0].Name != filepath.Base(file) {
					t.Fatalf("%s: answer %s, want %s", filepath.Base(file), body, want)
				}
			}
		})
	}
	t.Run("go generated", func(t *testing.T) { testGeneratedClient(t, a) })
}

// splitStatus parses the clients' output: the status on the first line
// (python, node) or the last (curl's -w), the JSON answer on the other.
func splitStatus(out string) (body, status string) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if strings.HasPrefix(lines[0], "{") {
		return strings.Join(lines[:len(lines)-1], "\n"), lines[len(lines)-1]
	}
	return strings.Join(lines[1:], "\n"), lines[0]
}
