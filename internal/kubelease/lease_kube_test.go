package kubelease_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"clamgate/internal/kubelease"
	"clamgate/internal/testenv"

	coordinationv1 "k8s.io/api/coordination/v1"
)

// startAPI is a real kube-apiserver with the chart's RBAC for the
// service account "clamgate"; it returns that account's credentials.
func startAPI(t *testing.T, lease string) (*testenv.KubeAPI, string) {
	k := testenv.StartKubeAPI(t, "clamgate", "stranger")
	k.GrantLease(t, "clamgate", lease)
	return k, k.Credentials(t, "clamgate")
}

func newKubeLease(t *testing.T, k *testenv.KubeAPI, creds, name, holder string, d time.Duration) *kubelease.Lease {
	t.Helper()
	l, err := kubelease.New(kubelease.Config{API: k.URL, Credentials: creds, Name: name, Holder: holder,
		Duration: d, Poll: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestLeaseTakesTurnsKubeAPI: TestLeaseTakesTurns against a real
// kube-apiserver with RBAC, as the chart's service account; the lease
// ends with no holder and four transitions.
func TestLeaseTakesTurnsKubeAPI(t *testing.T) {
	k, creds := startAPI(t, "turns")
	takeTurns(t, func(holder string) *kubelease.Lease { return newKubeLease(t, k, creds, "turns", holder, 3*time.Second) },
		func() string {
			if h := getLease(t, k, "turns").Spec.HolderIdentity; h != nil {
				return *h
			}
			return ""
		})
	got := getLease(t, k, "turns")
	if got.Spec.HolderIdentity != nil || *got.Spec.LeaseTransitions != 4 {
		t.Errorf("lease at the end: holder %v, transitions %d; want none, 4", got.Spec.HolderIdentity, *got.Spec.LeaseTransitions)
	}
}

// TestLeaseTakeOver: a holder that stopped renewing (its pod died) loses
// the lease once another pod has seen it unchanged for its duration; one
// that renews keeps it, and the waiting pod's bounded wait ends with an
// error naming the holder.
func TestLeaseTakeOverKubeAPI(t *testing.T) {
	k, creds := startAPI(t, "takeover")
	ghost := fmt.Sprintf(`{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"takeover"},
"spec":{"holderIdentity":"dead-pod","leaseDurationSeconds":2,"renewTime":%q}}`, time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"))
	k.Apply(t, "/apis/coordination.k8s.io/v1/namespaces/default/leases", ghost)
	start := time.Now()
	release, err := newKubeLease(t, k, creds, "takeover", "pod-a", 3*time.Second).Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("took the dead pod's lease after %v, before its 2 s", took)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = newKubeLease(t, k, creds, "takeover", "pod-b", 3*time.Second).Acquire(ctx)
	if err == nil || !strings.Contains(err.Error(), `held by "pod-a"`) {
		t.Errorf("pod-b's wait on a renewed lease: %v", err)
	}
	release()
}

// TestLeaseForbidden: a service account without the Role cannot take the
// lease; the wait ends at its bound with the API's refusal in the log.
func TestLeaseForbiddenKubeAPI(t *testing.T) {
	k, _ := startAPI(t, "forbidden")
	l := newKubeLease(t, k, k.Credentials(t, "stranger"), "forbidden", "pod-x", 3*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := l.Acquire(ctx); err == nil {
		t.Fatal("a service account without the Role took the lease")
	}
}

func getLease(t *testing.T, k *testenv.KubeAPI, name string) coordinationv1.Lease {
	t.Helper()
	code, body, err := k.Do(http.MethodGet, "/apis/coordination.k8s.io/v1/namespaces/default/leases/"+name, k.Admin, nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET lease: %d %s %v", code, body, err)
	}
	var l coordinationv1.Lease
	if err := json.Unmarshal(body, &l); err != nil {
		t.Fatal(err)
	}
	return l
}
