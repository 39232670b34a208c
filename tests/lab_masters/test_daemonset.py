"""DaemonSet pods on the chroot masters, through the real controller-manager and scheduler."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.lab.masters import MasterLab, is_running
from tests.lab.runtime import wait_for

pytestmark = [pytest.mark.lab_masters, pytest.mark.e2e]

DAEMONSET = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: lab-ds, namespace: kube-system}
spec:
  selector: {matchLabels: {app: lab-ds}}
  template:
    metadata: {labels: {app: lab-ds}}
    spec:
      hostNetwork: true
      nodeSelector: {node-role.kubernetes.io/control-plane: ""}
      tolerations: [{key: node-role.kubernetes.io/master, operator: Exists, effect: NoSchedule},
                    {key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}]
      containers:
      - name: marker
        image: debian:bookworm
        command: ["/bin/sh", "-c", "echo $(NODE) > /var/run/lab-ds/node && exec sleep 100000"]
        env: [{name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]
        readinessProbe: {exec: {command: [test, -s, /var/run/lab-ds/node]}, periodSeconds: 1}
        livenessProbe: {exec: {command: [test, -d, /var/run/lab-ds]}, periodSeconds: 2}
        volumeMounts: [{name: run, mountPath: /var/run/lab-ds}]
      volumes: [{name: run, hostPath: {path: /var/run/lab-ds, type: DirectoryOrCreate}}]
"""


def test_daemonset_pods_become_ready_on_every_master(master_lab: MasterLab) -> None:
    lab = master_lab
    url = lab.masters[0].url
    path = f"{url}/apis/apps/v1/namespaces/kube-system/daemonsets"
    with lab.session() as session:
        created = session.post(path, json=yaml.safe_load(DAEMONSET), timeout=10)
        assert created.status_code == 201, created.text
        try:

            def ready() -> dict | None:
                status = session.get(f"{path}/lab-ds", timeout=5).json().get("status", {})
                counts = [status.get(k) for k in ("desiredNumberScheduled", "numberReady", "numberAvailable")]
                return status if counts == [len(lab.masters)] * 3 else None

            status = wait_for(ready, timeout=120, what="DaemonSet lab-ds ready on every master")
            assert status["updatedNumberScheduled"] == len(lab.masters)
            for master in lab.masters:
                # hostPath mapped 1:1 inside that master's chroot (Debian's /var/run -> /run kept inside)
                assert master.run("cat", "/var/run/lab-ds/node").stdout.strip() == master.name
                assert (master.root / "run/lab-ds/node").read_text().strip() == master.name
                assert not Path("/run/lab-ds").exists()
            pids = [m.pods("lab-ds-")[0]["containers"][0]["pid"] for m in lab.masters]
        finally:
            session.delete(f"{path}/lab-ds", timeout=10)

        def pods_gone() -> bool:
            listing = session.get(f"{url}/api/v1/namespaces/kube-system/pods", timeout=5).json()
            return not [p for p in listing["items"] if p["metadata"]["name"].startswith("lab-ds-")]

        wait_for(pods_gone, timeout=120, what="DaemonSet pods deleted (the agents confirm deletion)")
    assert not [pid for pid in pids if is_running(pid)]
