package deploy

import (
	"fmt"
	"regexp"
	"strings"
)

// UpstreamImage is the image the article deployed, pinned by the digest it
// verified; the default when --image is not given.
const UpstreamImage = "docker.io/clamav/clamav@sha256:60e70e270d5703992f7c4f2c5c998a4709abf94153e80af8c461aa3c02513934"

var digestRE = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)

// Image is the engine's container image and how it must be run.
type Image struct {
	Ref string
	// Upstream images start as root to chown their database volume and
	// then drop to clamav (uid 100); they need five capabilities back and
	// watch /tmp/clamd.sock. Local images (deploy/image/build.sh) run
	// clamd directly as the host's clamav user and need none.
	Upstream bool
	Pinned   bool
}

// ParseImage refuses a moving tag unless allowTag: a tag lets whoever
// controls the registry replace the binary that reads every mail.
func ParseImage(ref string, allowTag bool) (Image, error) {
	if ref == "" {
		ref = UpstreamImage
	}
	img := Image{Ref: ref, Pinned: digestRE.MatchString(ref)}
	name := ref
	if i := strings.IndexAny(name, "@"); i >= 0 {
		name = name[:i]
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i]
	}
	img.Upstream = name == "docker.io/clamav/clamav" || name == "clamav/clamav" || name == "docker.io/clamav/clamav-debian" || name == "clamav/clamav-debian"
	if !img.Pinned && !allowTag {
		return img, fmt.Errorf("image %q is not pinned by digest (NAME@sha256:...): a moving tag can change the engine under you; pin it or pass --allow-moving-tag", ref)
	}
	return img, nil
}
