package kubelease

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
)

// TestWireMatchesAPI: what the package sends decodes strictly (unknown
// fields fail) into k8s.io/api's Lease with the values meant, and a Lease
// the API sends, fields this package does not use included, goes back
// unchanged but for the fields it sets.
func TestWireMatchesAPI(t *testing.T) {
	l := &Lease{cfg: Config{Name: "pool-reload", Namespace: "mail", Holder: "pod-a", Duration: 15 * time.Second}}
	var got coordinationv1.Lease
	strict(t, l.claim(nil), &got)
	if got.Name != "pool-reload" || got.Namespace != "mail" || *got.Spec.HolderIdentity != "pod-a" ||
		*got.Spec.LeaseDurationSeconds != 15 || *got.Spec.LeaseTransitions != 1 || got.Spec.RenewTime == nil ||
		time.Since(got.Spec.AcquireTime.Time) > time.Minute || got.Kind != "Lease" || got.APIVersion != "coordination.k8s.io/v1" {
		t.Fatalf("a new lease decodes as %+v", got)
	}
	// As the API answers, with what someone else set.
	const served = `{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"pool-reload","namespace":"mail",
"resourceVersion":"42","uid":"u-1","labels":{"app":"clamgate"}},"spec":{"holderIdentity":"pod-b","leaseDurationSeconds":15,
"acquireTime":"2026-12-05T16:00:00.000000Z","renewTime":"2026-12-05T16:00:05.123456Z","leaseTransitions":3,"strategy":"OldestEmulationVersion"}}`
	var cur wireLease
	if err := json.Unmarshal([]byte(served), &cur); err != nil {
		t.Fatal(err)
	}
	if cur.resourceVersion() != "42" {
		t.Errorf("resourceVersion %q", cur.resourceVersion())
	}
	strict(t, l.claim(&cur), &got)
	if got.ResourceVersion != "42" || got.UID != "u-1" || got.Labels["app"] != "clamgate" || *got.Spec.Strategy != "OldestEmulationVersion" ||
		*got.Spec.HolderIdentity != "pod-a" || *got.Spec.LeaseTransitions != 4 {
		t.Errorf("a claimed lease decodes as %+v", got)
	}
}

func strict(t *testing.T, v any, into any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(into); err != nil {
		t.Fatalf("%s does not decode strictly into k8s.io/api's Lease: %v", b, err)
	}
}
