"""End-to-end test support: a real Kubernetes control plane built from the Kubernetes Go modules.

``e2e.build`` builds and caches the multi-call binary; ``e2e.cluster`` runs etcd, kube-apiserver,
kube-controller-manager and kube-scheduler from it on 127.0.0.1; ``e2e.pki`` makes their certificates.
``e2e.netns`` runs a command in the private network namespace of the tests; ``e2e.harness`` runs
vk-eci and the fake ECI against that control plane (for the e2e tests, the bench and the demo).
"""
