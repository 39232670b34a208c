"""A real local Kubernetes control plane for end-to-end tests (see docs/lab.md).

The kube-1.20 lab: etcd + kube-apiserver (+ controller-manager + scheduler) v1.20.2, KMS v1 on real Secrets
(tests.lab.apiserver). The apiext lab: apiextensions-apiserver on k8s.io/apiserver >= 0.29, KMS v2 on a
custom resource (tests.lab.apiext). Processes, certificates, etcd access and cleanup live in small
modules next to these.
"""
