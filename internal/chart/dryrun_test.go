package chart

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"clamgate/internal/testenv"

	"sigs.k8s.io/yaml"
)

// plurals maps each kind the chart renders to its API collection.
var plurals = map[string]string{
	"Deployment": "deployments", "Service": "services", "ConfigMap": "configmaps",
	"PersistentVolumeClaim": "persistentvolumeclaims", "NetworkPolicy": "networkpolicies",
	"PodDisruptionBudget": "poddisruptionbudgets", "HorizontalPodAutoscaler": "horizontalpodautoscalers",
	"ServiceAccount": "serviceaccounts", "Role": "roles", "RoleBinding": "rolebindings",
}

// TestServerDryRun sends every object the chart renders (default values,
// stagger's RBAC included) to a real kube-apiserver as a create with
// dryRun=All and fieldValidation=Strict: the server's own validation,
// defaulting and admission judge them, on top of TestTemplate's decoding
// into the client types. Nothing is stored.
func TestServerDryRun(t *testing.T) {
	k := testenv.StartKubeAPI(t)
	k.Apply(t, "/api/v1/namespaces", `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"scan"}}`)
	r := render(t, defaultValues(t))
	kinds := map[string]int{}
	for _, doc := range r.docs {
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		var meta struct{ APIVersion, Kind string }
		if err := json.Unmarshal(js, &meta); err != nil {
			t.Fatal(err)
		}
		plural, ok := plurals[meta.Kind]
		if !ok {
			t.Fatalf("no API collection known for %s", meta.Kind)
		}
		base := "/apis/" + meta.APIVersion
		if !strings.Contains(meta.APIVersion, "/") {
			base = "/api/" + meta.APIVersion
		}
		path := base + "/namespaces/scan/" + plural + "?dryRun=All&fieldValidation=Strict"
		code, body, err := k.Do(http.MethodPost, path, k.Admin, js)
		if err != nil || code != http.StatusCreated {
			t.Errorf("%s refused by the API server: %d %s %v", meta.Kind, code, body, err)
			continue
		}
		kinds[meta.Kind]++
	}
	// The control: a misspelled field is refused, so a pass means something.
	bad := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"dataa":{}}`
	if code, _, err := k.Do(http.MethodPost, "/api/v1/namespaces/scan/configmaps?dryRun=All&fieldValidation=Strict", k.Admin, []byte(bad)); err != nil || code != http.StatusBadRequest {
		t.Errorf("a misspelled field was not refused: %d %v", code, err)
	}
	t.Logf("accepted by kube-apiserver %s (dry run): %v", testenv.KubeAPIVersion, kinds)
	if kinds["Deployment"] == 0 || kinds["NetworkPolicy"] == 0 || kinds["Role"] == 0 {
		t.Errorf("the default values rendered too little: %v", kinds)
	}
}
