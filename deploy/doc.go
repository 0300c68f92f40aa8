// Package deploy holds no code: its tests check what deploy/ ships (the Helm chart,
// the compose topology, the Grafana dashboard and the Dockerfile) without Docker or
// Kubernetes, against the real spanpipe binary. See deploy_test.go.
package deploy
