package doctor

import (
	"bufio"
	"context"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
)

func imageDigestCheck() check {
	return check{
		id: "image-digest", title: "the clamd container image is pinned by digest", expected: "IMAGE@sha256:<digest>",
		source: "A tag can be moved to another image at any time; a digest names exactly the image that was checked. docs/doctor.md#image-digest", offline: true,
		run: checkImageDigest,
	}
}

var digestRE = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)

func checkImageDigest(_ context.Context, h *host) verdict {
	var images [][2]string // file, image
	quadlet := h.env.path(ClamdQuadlet)
	for _, img := range unitValues(quadlet, "[Container]", "Image") {
		images = append(images, [2]string{ClamdQuadlet, img})
	}
	if plain := h.units().find(ClamdPlainUnit); plain != "" {
		env := unitEnvironment(plain)
		for _, exec := range unitValues(plain, "[Service]", "ExecStart") {
			if img := podmanRunImage(exec, env); img != "" {
				images = append(images, [2]string{h.env.display(plain), img})
			}
		}
	}
	if len(images) == 0 {
		if engine, ok := imagelessEngine(h); ok {
			return pass("no image: " + engine)
		}
		return verdict{status: Warn, measured: "no clamd container definition (" + ClamdQuadlet + ", " + ClamdPlainUnit + ")", fix: "clamgate deploy apply writes both, with the image pinned"}
	}
	return fold(images, "name the image by digest (clamgate deploy image prints it): Image=REPO@sha256:...", func(fi [2]string) (Status, string) {
		part := fi[0] + ": " + fi[1]
		if !digestRE.MatchString(fi[1]) {
			return Fail, part + " (NOT pinned)"
		}
		return Pass, part
	})
}

// imagelessEngine recognises the engines that run the host's own clamd
// package, which has no image to pin: the unit `deploy --engine unit`
// writes, and clamgate's managed clamd (a clamd whose parent is clamgate).
func imagelessEngine(h *host) (string, bool) {
	if plain := h.units().find(ClamdPlainUnit); plain != "" {
		for _, exec := range unitValues(plain, "[Service]", "ExecStart") {
			if words := strings.Fields(strings.TrimLeft(exec, "-@:+!")); len(words) > 0 && path.Base(words[0]) == "clamd" {
				return h.env.display(plain) + " runs the host's clamd (deploy --engine unit)", true
			}
		}
	}
	if h.env.Offline {
		return "", false
	}
	var managed []string
	for _, p := range h.named(isClamd) {
		if parent := h.process(p.PPID); parent != nil && parent.is("clamgate") {
			managed = append(managed, strconv.Itoa(p.PID))
		}
	}
	if len(managed) == 0 {
		return "", false
	}
	return "clamd (pid " + strings.Join(managed, ", ") + ") is clamgate's managed engine, sandboxed by clamgate", true
}

// unitValues reads every value of key in section, joining the lines a
// trailing backslash continues.
func unitValues(file, section, key string) []string {
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	cur, logical := "", ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasSuffix(line, "\\") {
			logical += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		line, logical = logical+line, ""
		if strings.HasPrefix(line, "[") {
			cur = line
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok && cur == section && strings.TrimSpace(k) == key {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// unitEnvironment reads Environment=K=V pairs, for an image named ${IMAGE}.
func unitEnvironment(file string) map[string]string {
	env := map[string]string{}
	for _, v := range unitValues(file, "[Service]", "Environment") {
		for _, kv := range strings.Fields(v) {
			k, val, ok := strings.Cut(strings.Trim(kv, `"`), "=")
			if ok {
				env[k] = strings.Trim(val, `"`)
			}
		}
	}
	return env
}

// podmanFlags take no value; any other option without "=" consumes the
// next word, so that the first free word after `run` is the image.
var podmanFlags = map[string]bool{"--rm": true, "--replace": true, "-d": true, "--detach": true, "--read-only": true,
	"--init": true, "--privileged": true, "-i": true, "-t": true, "--interactive": true, "--tty": true, "--no-hosts": true,
	"--rmi": true, "--read-only-tmpfs": true, "--no-healthcheck": true, "--env-host": true, "-q": true, "--quiet": true,
	"--oom-kill-disable": true, "-P": true, "--publish-all": true, "--http-proxy": true, "--tls-verify": true}

func podmanRunImage(exec string, env map[string]string) string {
	words := strings.Fields(strings.TrimLeft(exec, "-@:+!"))
	i := 0
	for i < len(words) && !strings.HasSuffix(words[i], "podman") && !strings.HasSuffix(words[i], "docker") {
		i++
	}
	for i < len(words) && words[i] != "run" { // past global options such as --runtime runc
		i++
	}
	for i++; i < len(words); i++ {
		w := strings.Trim(words[i], `"'`)
		switch {
		case !strings.HasPrefix(w, "-"):
			return expandEnv(w, env)
		case !strings.Contains(w, "=") && !podmanFlags[w]:
			i++
		}
	}
	return ""
}

func expandEnv(s string, env map[string]string) string {
	return os.Expand(s, func(k string) string { return env[k] })
}
