"""playbooks/verify.yml, the audit: it fails while Secrets are stored in the clear, passes after site.yml, and
never changes anything or leaves its probe Secret behind."""

from __future__ import annotations

import pytest

from tests.lab.playbooks import output, recap

from .conftest import PROVIDER, Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.lab_masters]


def test_the_audit_fails_while_secrets_are_in_the_clear(cluster: Cluster) -> None:
    before = cluster.etcd_secrets("default")
    run = cluster.playbook("playbooks/verify.yml")
    assert run.returncode != 0, output(run)
    said = " ".join(run.stdout.split())
    assert f"a new Secret is stored as identity, not with the KMS provider {PROVIDER}" in said, output(run)
    assert "Secrets are not yet stored with" in said, output(run)
    assert cluster.etcd_secrets("default").keys() == before.keys()  # the probe Secret is gone again


def test_the_audit_passes_after_the_rollout_and_changes_nothing(cluster: Cluster) -> None:
    rollout = cluster.playbook("site.yml")
    assert rollout.returncode == 0, output(rollout)
    before = cluster.etcd_secrets("default")

    audit = cluster.playbook("playbooks/verify.yml")
    assert audit.returncode == 0, output(audit)
    said = " ".join(audit.stdout.split())
    assert f"stored in etcd as kms:v1:{PROVIDER}" in said and " 0 not yet stored" in said, output(audit)
    assert recap(audit) and all(changed == 0 and failed == 0 for changed, _, failed in recap(audit).values())
    assert cluster.etcd_secrets("default") == before  # the probe Secret is gone, nothing was rewritten
    assert all(found == cluster.seeded for found in cluster.read_seeded().values())
