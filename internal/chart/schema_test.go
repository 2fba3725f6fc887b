package chart

import (
	"strings"
	"testing"
)

// TestSchemaRefuses: values.schema.json turns away what would render a
// broken or weaker pool, naming the key.
func TestSchemaRefuses(t *testing.T) {
	for _, c := range []struct{ name, values, want string }{
		{"unknown top-level key", "replica: 3\n", "replica"},
		{"misspelled image key", "image: {repository: x, tags: y}\n", "tags"},
		{"misspelled policy key", "policies: {mail: {tlsIdentities: [\"dns:a\"], tls_identities: [\"dns:b\"]}}\n", "tls_identities"},
		{"policy without identities", "policies: {edge: {commands: [PING]}}\n", "tlsIdentities"},
		{"identity without kind", "policies: {mail: {tlsIdentities: [mx1.example.org]}}\n", "tlsIdentities"},
		{"unknown reload mode", "database: {sizeMiB: 200, reload: fast}\n", "reload"},
		{"misspelled database key", "database: {sizeMib: 200, reload: frugal}\n", "sizeMib"},
		{"root uid", "securityContext: {gatewayUser: 0, clamdUser: 10002, group: 10000}\n", "gatewayUser"},
		{"path-scan command", "policies: {mail: {tlsIdentities: [\"dns:a\"], commands: [SCAN]}}\n", "commands"},
		{"port out of range", "fronts: {clamd: {enabled: true, port: 70000}}\n", "port"},
		{"unknown front", "fronts: {milter: {enabled: true, port: 7357}}\n", "milter"},
		{"bad CIDR", "networkPolicy: {cidrs: [everyone]}\n", "cidrs"},
		{"unpinned digest", "image: {repository: x, digest: latest}\n", "digest"},
		{"misspelled stagger key", "stagger: {enable: true}\n", "enable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := helm(t, append([]string{"template", "pool", chartDir(t)}, writeValues(t, c.values)...)...)
			if err == nil {
				t.Fatalf("accepted:\n%s", c.values)
			}
			if !strings.Contains(err.Error(), "schema") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("refused without naming %q: %v\n%s", c.want, err, out)
			}
		})
	}
	t.Run("same uid for both containers", func(t *testing.T) {
		_, err := helm(t, append([]string{"template", "pool", chartDir(t)}, writeValues(t, "securityContext: {gatewayUser: 10001, clamdUser: 10001, group: 10000}\n")...)...)
		if err == nil || !strings.Contains(err.Error(), "must differ") {
			t.Errorf("two containers under one uid: %v", err)
		}
	})
}
