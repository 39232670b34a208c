"""The collection's modules run in-process against the lab's real kube-apiserver and etcd."""

import tests.unit.collection  # noqa: F401 - puts the collection on sys.path
