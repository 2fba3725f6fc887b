package chart

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"clamgate/internal/config"
	"clamgate/internal/sigdb"
)

// TestTemplate renders the chart with each value set and checks what the
// chart promises: two containers under distinct non-root uids, every
// hardening field, the database read-only, clamd on no port at all,
// readiness on /readyz, a rollout that keeps capacity, clamd's memory by
// the formula `clamgate engine prepare` uses, and a clamgate.toml that
// clamgate itself accepts.
func TestTemplate(t *testing.T) {
	for name, values := range valueSets {
		t.Run(name, func(t *testing.T) {
			var v chartValues
			if err := yaml.Unmarshal([]byte(defaultValues(t)), &v); err != nil {
				t.Fatal(err)
			}
			if err := yaml.Unmarshal([]byte(values), &v); err != nil {
				t.Fatal(err)
			}
			r := render(t, values)
			pool := r.deployments["pool-clamgate"]
			if pool == nil {
				t.Fatalf("no Deployment pool-clamgate among %d objects", len(r.docs))
			}
			checkPod(t, pool, v)
			checkServices(t, r, v)
			checkConfig(t, r.configMaps["pool-clamgate"], v)
			checkNetworkPolicy(t, r, v)
			if pool.Spec.Strategy.RollingUpdate == nil || pool.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
				t.Errorf("rolling update may take capacity away: %+v", pool.Spec.Strategy)
			}
			if v.Autoscaling.Enabled != (len(r.hpas) == 1) || v.Autoscaling.Enabled != (pool.Spec.Replicas == nil) {
				t.Errorf("autoscaling %v: %d HPAs, replicas %v", v.Autoscaling.Enabled, len(r.hpas), pool.Spec.Replicas)
			}
			for _, h := range r.hpas {
				if h.Spec.ScaleTargetRef.Name != pool.Name || h.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
					t.Errorf("HPA: %+v", h.Spec)
				}
			}
			if v.PodDisruptionBudget.Enabled != (len(r.pdbs) == 1) {
				t.Errorf("podDisruptionBudget %v: %d PDBs", v.PodDisruptionBudget.Enabled, len(r.pdbs))
			}
			checkStagger(t, r, pool, v)
			if up := r.deployments["pool-clamgate-updater"]; (up != nil) != v.Updater.Enabled {
				t.Errorf("updater %v, Deployment %v", v.Updater.Enabled, up != nil)
			} else if up != nil {
				checkUpdater(t, up, r, v)
			}
		})
	}
}

// chartValues is the part of values.yaml the assertions read.
type chartValues struct {
	SecurityContext struct{ GatewayUser, ClamdUser, Group int64 }
	Database        struct {
		SizeMiB int64
		Reload  string
		Volume  map[string]any
	}
	Fronts map[string]struct {
		Enabled bool
		Port    int32
	}
	Metrics             struct{ Port int32 }
	Autoscaling         struct{ Enabled bool }
	PodDisruptionBudget struct{ Enabled bool }
	Updater             struct {
		Enabled       bool
		PrivateMirror string
		Pvc           struct{ Create bool }
	}
	NetworkPolicy struct {
		Enabled    bool
		Namespaces []string
		Cidrs      []string
	}
	Stagger struct {
		Enabled        bool
		APIServerCIDRs []string `json:"apiServerCIDRs"`
	}
}

func defaultValues(t *testing.T) string {
	out, err := helm(t, "show", "values", chartDir(t))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func checkPod(t *testing.T, d *appsv1.Deployment, v chartValues) {
	spec := d.Spec.Template.Spec
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext: %+v", psc)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the pod mounts a service account token it never uses")
	}
	names := []string{}
	uids := map[int64]string{}
	for _, c := range spec.Containers {
		names = append(names, c.Name)
		sc := c.SecurityContext
		switch {
		case sc == nil || sc.RunAsUser == nil || *sc.RunAsUser == 0:
			t.Errorf("%s: no non-root runAsUser: %+v", c.Name, sc)
			continue
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			t.Errorf("%s: root file system writable", c.Name)
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Errorf("%s: privilege escalation allowed", c.Name)
		case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
			t.Errorf("%s: runAsNonRoot not set", c.Name)
		case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
			t.Errorf("%s: capabilities %+v", c.Name, sc.Capabilities)
		case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
			t.Errorf("%s: seccomp %+v", c.Name, sc.SeccompProfile)
		}
		if other, ok := uids[*sc.RunAsUser]; ok {
			t.Errorf("%s and %s share uid %d", c.Name, other, *sc.RunAsUser)
		}
		uids[*sc.RunAsUser] = c.Name
		for _, m := range c.VolumeMounts {
			if m.Name == "database" && !m.ReadOnly {
				t.Errorf("%s mounts the database writable", c.Name)
			}
		}
		if c.Name == "clamd" && len(c.Ports) > 0 {
			t.Errorf("clamd has ports %+v: it must be reachable only through its socket", c.Ports)
		}
	}
	if !slices.Equal(names, []string{"clamgate", "clamd"}) {
		t.Fatalf("containers %v, want clamgate and clamd", names)
	}
	gw, cd := spec.Containers[0], spec.Containers[1]
	if p := gw.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness is not clamgate's /readyz: %+v", p)
	}
	if *gw.SecurityContext.RunAsUser != v.SecurityContext.GatewayUser || *cd.SecurityContext.RunAsUser != v.SecurityContext.ClamdUser {
		t.Errorf("uids %d, %d: want the values' %d, %d", *gw.SecurityContext.RunAsUser, *cd.SecurityContext.RunAsUser, v.SecurityContext.GatewayUser, v.SecurityContext.ClamdUser)
	}
	// The socket's emptyDir is the containers' only way to each other.
	for _, c := range spec.Containers {
		if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "clamd-socket" && m.MountPath == "/run/clamd" }) {
			t.Errorf("%s does not mount the socket's emptyDir at /run/clamd", c.Name)
		}
	}
	for _, vol := range spec.Volumes {
		if vol.Name == "clamd-socket" && vol.EmptyDir == nil {
			t.Errorf("the socket's volume is not an emptyDir: %+v", vol.VolumeSource)
		}
		if vol.Name == "database" && vol.PersistentVolumeClaim != nil && !vol.PersistentVolumeClaim.ReadOnly {
			t.Error("the database claim is not read-only")
		}
	}
	m := sigdb.SizeMemory(v.Database.SizeMiB << 20)
	req, lim := cd.Resources.Requests[corev1.ResourceMemory], cd.Resources.Limits[corev1.ResourceMemory]
	if req.Value() != m.HighMiB<<20 || lim.Value() != m.MaxMiB<<20 {
		t.Errorf("clamd's memory for %d MiB on disk: request %s, limit %s; engine prepare's formula gives %d Mi and %d Mi",
			v.Database.SizeMiB, req.String(), lim.String(), m.HighMiB, m.MaxMiB)
	}
	if _, ok := cd.Resources.Limits[corev1.ResourceCPU]; ok {
		t.Error("clamd has a CPU limit: it would throttle every scan")
	}
}

func checkServices(t *testing.T, r *rendered, v chartValues) {
	front := r.services["pool-clamgate"]
	if front == nil || r.services["pool-clamgate-metrics"] == nil {
		t.Fatalf("services %v", keys(r.services))
	}
	var want []string
	for name, f := range v.Fronts {
		if f.Enabled {
			want = append(want, fmt.Sprintf("%s-tls:%d", name, f.Port))
		}
	}
	var got []string
	for _, s := range r.services {
		for _, p := range s.Spec.Ports {
			if p.Port == 3310 || strings.Contains(p.Name, "clamd") && !strings.HasSuffix(p.Name, "-tls") {
				t.Errorf("service %s exposes clamd itself: %+v", s.Name, p)
			}
			if s == front {
				got = append(got, fmt.Sprintf("%s:%d", p.Name, p.Port))
			}
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("front ports %v, want %v", got, want)
	}
}

// checkConfig: the rendered clamgate.toml is one clamgate accepts, with
// every listener on TLS with client certificates, and clamd.conf opens
// no TCP socket.
func checkConfig(t *testing.T, cm *corev1.ConfigMap, v chartValues) {
	if cm == nil {
		t.Fatal("no ConfigMap pool-clamgate")
	}
	toml := cm.Data["clamgate.toml"]
	if v.Stagger.Enabled != strings.Contains(toml, `stagger = "kubernetes"`) {
		t.Errorf("stagger %v, configuration:\n%s", v.Stagger.Enabled, toml)
	}
	cfg, err := config.Parse("clamgate.toml", []byte(toml))
	if err != nil {
		t.Fatalf("clamgate does not accept the rendered configuration: %v\n%s", err, cm.Data["clamgate.toml"])
	}
	for _, l := range cfg.Listeners {
		if !strings.HasPrefix(l.Address, "tls:") || l.TLS.CA == "" {
			t.Errorf("listener %s serves without client certificates", l.Address)
		}
	}
	if len(cfg.Backends) != 1 || cfg.Backends[0] != "unix:/run/clamd/clamd.sock" {
		t.Errorf("backends %v", cfg.Backends)
	}
	clamdConf := cm.Data["clamd.conf"]
	for _, line := range strings.Split(clamdConf, "\n") {
		if strings.HasPrefix(line, "TCPSocket") || strings.HasPrefix(line, "TCPAddr") {
			t.Errorf("clamd.conf: %s", line)
		}
	}
	// A frugal reload waits for clamd's worker threads to exit: without
	// IdleTimeout 2, for 30 s after the last scan.
	frugal := strings.Contains(clamdConf, "ConcurrentDatabaseReload no")
	if frugal != (v.Database.Reload == "frugal") || frugal != strings.Contains(clamdConf, "\nIdleTimeout 2\n") {
		t.Errorf("reload %q, clamd.conf:\n%s", v.Database.Reload, clamdConf)
	}
}

// checkStagger: with stagger, the pod runs under its ServiceAccount, whose
// Role may read and update the reload Lease only (and create Leases); the
// API token is mounted in the clamgate container, never in clamd's; the
// pod's name and namespace reach the gateway; egress is the API server's
// ports only. Without it, none of these exist.
func checkStagger(t *testing.T, r *rendered, pool *appsv1.Deployment, v chartValues) {
	spec := pool.Spec.Template.Spec
	if !v.Stagger.Enabled {
		if len(r.accounts)+len(r.roles)+len(r.bindings) > 0 || spec.ServiceAccountName != "" {
			t.Error("RBAC objects or a service account without stagger")
		}
		return
	}
	if len(r.accounts) != 1 || len(r.roles) != 1 || len(r.bindings) != 1 {
		t.Fatalf("stagger: %d ServiceAccounts, %d Roles, %d RoleBindings", len(r.accounts), len(r.roles), len(r.bindings))
	}
	sa, role, rb := r.accounts[0], r.roles[0], r.bindings[0]
	if spec.ServiceAccountName != sa.Name || rb.Subjects[0].Name != sa.Name || rb.RoleRef.Name != role.Name {
		t.Errorf("pod account %q, binding %+v to %+v", spec.ServiceAccountName, rb.Subjects, rb.RoleRef)
	}
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Error("the ServiceAccount's token is mounted in every container")
	}
	for _, rule := range role.Rules {
		if !slices.Equal(rule.APIGroups, []string{"coordination.k8s.io"}) || !slices.Equal(rule.Resources, []string{"leases"}) {
			t.Errorf("the Role reaches beyond Leases: %+v", rule)
		}
		if !slices.Equal(rule.Verbs, []string{"create"}) && !slices.Equal(rule.ResourceNames, []string{"pool-clamgate-reload"}) {
			t.Errorf("the Role reaches other Leases than the pool's: %+v", rule)
		}
	}
	for _, c := range spec.Containers {
		token := slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "kube-api" })
		env := slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "POD_NAME" && e.ValueFrom != nil })
		if want := c.Name == "clamgate"; token != want || env != want {
			t.Errorf("%s: API token mounted %v, POD_NAME %v", c.Name, token, env)
		}
	}
	if v.NetworkPolicy.Enabled {
		eg := r.netpols[0].Spec.Egress
		if len(eg) != 1 || len(eg[0].Ports) != 2 || eg[0].Ports[0].Port.IntValue() != 443 || eg[0].Ports[1].Port.IntValue() != 6443 ||
			len(eg[0].To) != len(v.Stagger.APIServerCIDRs) {
			t.Errorf("egress with stagger: %+v", eg)
		}
	}
}

func checkNetworkPolicy(t *testing.T, r *rendered, v chartValues) {
	if !v.NetworkPolicy.Enabled {
		if len(r.netpols) != 0 {
			t.Error("a NetworkPolicy though disabled")
		}
		return
	}
	if len(r.netpols) != 1 {
		t.Fatalf("%d NetworkPolicies", len(r.netpols))
	}
	np := r.netpols[0]
	if len(np.Spec.Egress) != 0 && !v.Stagger.Enabled || !slices.Contains(np.Spec.PolicyTypes, "Egress") {
		t.Errorf("the pods may open connections: %+v", np.Spec.Egress)
	}
	var nss, cidrs []string
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port.IntValue() == 3310 {
				t.Error("NetworkPolicy admits clamd's port")
			}
		}
		if len(rule.Ports) == 1 && rule.Ports[0].Port.IntValue() == int(v.Metrics.Port) {
			continue
		}
		for _, f := range rule.From {
			if f.NamespaceSelector != nil {
				nss = append(nss, f.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"])
			}
			if f.IPBlock != nil {
				cidrs = append(cidrs, f.IPBlock.CIDR)
			}
		}
	}
	if !slices.Equal(nss, v.NetworkPolicy.Namespaces) || !slices.Equal(cidrs, v.NetworkPolicy.Cidrs) {
		t.Errorf("fronts admitted from %v %v, want %v %v", nss, cidrs, v.NetworkPolicy.Namespaces, v.NetworkPolicy.Cidrs)
	}
}

func checkUpdater(t *testing.T, up *appsv1.Deployment, r *rendered, v chartValues) {
	if *up.Spec.Replicas != 1 || up.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("the updater may run twice: %d replicas, %s", *up.Spec.Replicas, up.Spec.Strategy.Type)
	}
	c := up.Spec.Template.Spec.Containers[0]
	if sc := c.SecurityContext; sc == nil || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation {
		t.Errorf("updater hardening: %+v", sc)
	}
	if v.Updater.Pvc.Create && len(v.Database.Volume) == 0 {
		pvc := r.pvcs["pool-clamgate-database"]
		if pvc == nil || !slices.Contains(pvc.Spec.AccessModes, corev1.ReadWriteMany) {
			t.Errorf("the database claim is not ReadWriteMany: %+v", pvc)
		}
	}
	conf := r.configMaps["pool-clamgate-updater"].Data["freshclam.conf"]
	if v.Updater.PrivateMirror != "" && !strings.Contains(conf, "PrivateMirror "+v.Updater.PrivateMirror) {
		t.Errorf("freshclam.conf lacks the private mirror:\n%s", conf)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
