// Package chart holds the tests of the Helm chart in deploy/helm/clamgate:
// helm lint and helm template with several value sets, the values schema
// refusing bad values, every rendered object decoded strictly into the
// Kubernetes API types, the hardening fields, the clamd memory formula,
// and the rendered clamgate.toml accepted by clamgate's own parser. The
// pod itself runs under podman kube play in pod_test.go.
package chart
