"""The reliability suite: the lifecycle site.yml -> rotate.yml -> disable.yml on chroot lab masters, from
the starting encryption configs of tests/lifecycle/matrix.py, each step with the faults of the matrix
injected, plus the refusals. 200 Secrets and 200 ConfigMaps of known values; after every step (and every
refusal) each of them reads back its value through every master's apiserver and etcd holds it with the
prefix expected for its resource at that point. A refusal must fail with a clear message and leave every
master's manifests and encryption config byte for byte as they were.

One lifecycle, parametrized by scenario (a starting config, its masters, its faults); `make test` runs the
quick matrix, `make reliability` (TKE_KMS_RELIABILITY=full) the whole one. The session ends with the table
(conftest.py). docs/lifecycle.md lists what each step must do under each fault.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.lab import kubeadm
from tests.lab.masters import REPO, Master
from tests.lab.playbooks import VENV_BIN, output, playbook_argv, playbook_env, recap
from tests.lab.runtime import wait_for

from . import matrix
from .conftest import PROVIDER, RELIABILITY_TABLE, Cluster, Row, running_cluster
from .flavour import KUBE_1_20
from .starting_config import CONFIG, FLAG, RESOURCES, apiserver_uid, ready, storage_label

pytestmark = [pytest.mark.e2e, pytest.mark.lab_masters, pytest.mark.reliability]
SECRETS = 200
CONFIGMAPS = 200
KEY_IN_USE = "lifecycle-test"  # the inventory's tke_kms_key_alias
NEW_KEY = "reliability-key2"
ROTATED = "tke-kms-rotated"  # the provider and plugin a rotation moves to
ROTATED_SOCKET = f"/var/run/tke-kms-plugin/{ROTATED}.sock"
ROTATION = (
    f"-e tke_kms_rotate_provider_name={ROTATED} -e tke_kms_rotate_key_alias={NEW_KEY}"
    " -e tke_kms_rotate_delete_old_key=true"
).split()
SAME_KEY_ROTATION = (
    f"-e tke_kms_rotate_provider_name=tke-kms-samekey -e tke_kms_rotate_key_alias={KEY_IN_USE}"
    " -e tke_kms_rotate_delete_old_key=true"
).split()
AFTER_ROTATION = (
    f"-e tke_kms_provider_name={ROTATED} -e tke_kms_plugin_name={ROTATED} -e tke_kms_socket={ROTATED_SOCKET}"
).split()
RESTART_MARKER = "Wait for kube-apiserver to restart with the new configuration on {}"
RELOAD_MARKER = "Wait for kube-apiserver to load the encryption config, without a restart, on {}"
WRITE_PHASE_MARKER = "PLAY [Write phase"
FAULT_FILE = "/etc/kubernetes/lab-fault-apiserver-down"
# Installed on a master by ApiserverDown: kube-apiserver refuses to start while the fault file exists.
FAULTY_APISERVER = f"""#!/bin/sh
if [ -e {FAULT_FILE} ]; then
    echo "lab fault: kube-apiserver does not come back on this master" >&2
    exit 1
fi
exec /usr/local/bin/kube-apiserver "$@"
"""
RUN_TIMEOUT = 1800


@dataclass
class Lifecycle:
    """One scenario's cluster and how far its lifecycle got."""

    cluster: Cluster
    scenario: matrix.Scenario
    start_config: dict[str, Any] | None  # the starting config as written on the masters
    broken: str = ""  # the step that failed: later steps cannot run meaningfully

    @property
    def masters(self) -> list[Master]:
        return self.cluster.lab.masters

    @property
    def victim(self) -> Master:
        return self.masters[1]

    def require(self) -> None:
        if self.broken:
            pytest.fail(f"not run: {self.broken}")

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self.broken = f"{name} failed earlier on this cluster"
            raise

    def fault(self, fault: str) -> bool:
        return fault in self.scenario.faults

    def expected(self, kms_provider: str | None, *, disabled: bool = False) -> dict[str, bytes]:
        """resource -> the prefix etcd must store it with (the starting config's expected storage, with the
        KMS API of these masters)."""
        return self.scenario.start.expected(
            kms_provider, disabled=disabled, kms_api=self.scenario.flavour.kms_api
        )


@dataclass
class Outcome:
    """How one step of a lane's lifecycle ended (set by the lane's thread, awaited by the step's test)."""

    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


def run_lane(scenario: matrix.Scenario, outcomes: dict[str, Outcome], tmp: Path) -> None:
    """The whole lifecycle of one scenario on its own cluster, step after step; what each step ended with.
    Raises what went wrong starting or stopping the cluster (the fixture reports it)."""
    try:
        kind = "rv2" if scenario.flavour.kms_v2 else "rel"
        name = f"{kind}{'r' if scenario.flavour.reload else ''}-{scenario.start.id.split('_')[0]}"
        with running_cluster(
            name,
            scenario.masters,
            SECRETS,
            configmaps=CONFIGMAPS,
            start=scenario.start,
            flavour=scenario.flavour,
        ) as cluster:
            lifecycle = Lifecycle(cluster, scenario, encryption_config(cluster.lab.masters[0]))
            for step, function in STEPS.items():
                try:
                    lifecycle.require()
                    function(lifecycle, tmp / step)
                except BaseException as exc:  # Failed and Skipped too: the step's test re-raises them
                    outcomes[step].error = exc
                finally:
                    outcomes[step].done.set()
    except BaseException as exc:
        for outcome in outcomes.values():
            if not outcome.done.is_set():
                outcome.error = exc
                outcome.done.set()
        raise


@pytest.fixture(scope="module")
def lanes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Every selected scenario's lifecycle, matrix.LANES of them at a time, each on its own cluster in a
    thread: scenario id -> step -> Outcome."""
    selected = {
        item.callspec.params["scenario"].id
        for item in request.session.items
        if hasattr(item, "callspec") and "scenario" in item.callspec.params
    }
    scenarios = [s for s in matrix.SCENARIOS if s.id in selected]
    found = {s.id: {step: Outcome() for step in STEPS} for s in scenarios}
    with ThreadPoolExecutor(max_workers=matrix.LANES, thread_name_prefix="lane") as pool:
        runs = []
        for scenario in scenarios:
            tmp = tmp_path_factory.mktemp(scenario.id)
            for step in STEPS:
                (tmp / step).mkdir()
            runs.append(pool.submit(run_lane, scenario, found[scenario.id], tmp))
        yield found
    for run in runs:
        run.result()  # a cluster that did not start or stop cleanly: an error at teardown


# -- what the masters hold


def encryption_config(master: Master) -> dict[str, Any] | None:
    path = master.path(CONFIG)
    return yaml.safe_load(path.read_text()) if path.exists() else None


def label(provider: dict[str, Any]) -> str:
    return f"kms:{provider['kms']['name']}" if "kms" in provider else next(iter(provider))


def entry_of(config: dict[str, Any] | None, resource: str) -> dict[str, Any]:
    """The entry of the config that covers `resource` ({} when none does)."""
    entries = (config or {}).get("resources") or []
    return next((e for e in entries if resource in e.get("resources", [])), {})


def providers(master: Master, resource: str = "secrets") -> list[str]:
    """The provider labels (kms:<name> or the type) of the entry that covers `resource` on this master."""
    return [label(p) for p in entry_of(encryption_config(master), resource).get("providers", [])]


def manifest_text(master: Master) -> str:
    return (master.manifests / "kube-apiserver.yaml").read_text()


def plugin_container(master: Master, pod: str) -> dict | None:
    pods = master.pods(pod)
    return pods[0]["containers"][0] if pods and pods[0]["containers"] else None


def snapshot(cluster: Cluster) -> dict[Path, bytes | None]:
    """Every master's static-pod manifests and encryption config, byte for byte (None: no such file)."""
    files: dict[Path, bytes | None] = {}
    for master in cluster.lab.masters:
        for path in sorted(master.manifests.iterdir()):
            files[path] = path.read_bytes()
        config = master.path(CONFIG)
        files[config] = config.read_bytes() if config.exists() else None
    return files


def changed_since(cluster: Cluster, before: dict[Path, bytes | None]) -> list[str]:
    now = snapshot(cluster)
    return [
        str(path.relative_to(cluster.lab.directory))
        for path in sorted(set(before) | set(now))
        if before.get(path) != now.get(path)
    ]


def put_back(cluster: Cluster, before: dict[Path, bytes | None]) -> None:
    """Undo what a refusal that did not refuse changed, so that the lifecycle can go on."""
    restarting = {m.name: apiserver_uid(m) for m in cluster.lab.masters}
    now = snapshot(cluster)
    touched = set()
    for path in set(before) | set(now):
        if before.get(path) == now.get(path):
            continue
        touched.add(next(m.name for m in cluster.lab.masters if path.is_relative_to(m.root)))
        content = before.get(path)
        if content is None:
            path.unlink()
            continue
        staging = path.parent.parent / f".{path.name}.restore"
        staging.write_bytes(content)
        staging.chmod(0o600)
        os.replace(staging, path)
    for master in cluster.lab.masters:
        if master.name in touched:
            wait_for(
                lambda m=master: apiserver_uid(m) not in (None, restarting[m.name]),
                timeout=120,
                what=f"{master.name}: kube-apiserver restarted with what was put back",
                interval=0.5,
            )
        wait_for(
            lambda m=master: ready(cluster.lab, m), timeout=240, what=f"{master.name} /readyz", interval=0.5
        )


# -- the census after every step


@dataclass
class Census:
    total: int
    broken: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> str:
        return f"{self.total - len(self.broken)}/{self.total}"


def stored_as(value: bytes) -> str:
    """The storage label of a raw etcd value: kms:v1:<name>, aescbc:v1:<key>, clear, or unknown."""
    if value.startswith(b"k8s:enc:"):
        return b":".join(value.split(b":", 5)[2:5]).decode(errors="replace")
    return "clear" if value.startswith(b"k8s\x00") else "unknown"


def census(cluster: Cluster, resource: str, prefix: bytes) -> Census:
    """The seeded objects of `resource`: read back with their value on every master, stored with `prefix`."""
    seeded = cluster.seeded_values(resource)
    found = Census(len(seeded))
    for master, values in cluster.read_values(resource).items():
        if isinstance(values, str):
            found.problems.append(f"{master} cannot list {resource}: {values}")
            found.broken |= set(seeded)
            continue
        lost = {name for name, value in seeded.items() if values.get(name) != value}
        if lost:
            found.problems.append(
                f"{master}: {len(lost)} {resource} missing or changed, e.g. {sorted(lost)[:3]}"
            )
        found.broken |= lost
    stored = cluster.etcd_values(resource, "default")
    raw = {name: stored.get(f"/registry/{resource}/default/{name}", b"") for name in seeded}
    wrong = {name for name, value in raw.items() if not value.startswith(prefix)}
    if wrong:
        kinds = dict(Counter(stored_as(raw[name]) for name in wrong))
        found.problems.append(
            f"{len(wrong)} of {len(seeded)} {resource} not stored as {storage_label(prefix)} but as {kinds}"
        )
    found.broken |= wrong
    return found


def record(lifecycle: Lifecycle, step: str, fault: str, expected: dict[str, bytes]) -> None:
    """Count what is intact, add the row to the table, and fail with what is not."""
    counts = {resource: census(lifecycle.cluster, resource, expected[resource]) for resource in RESOURCES}
    storage = ", ".join(f"{resource} {storage_label(prefix)}" for resource, prefix in expected.items())
    RELIABILITY_TABLE.append(
        Row(
            lifecycle.scenario.flavour.label,
            lifecycle.scenario.start.label,
            step,
            fault,
            counts["secrets"].intact,
            counts["configmaps"].intact,
            storage,
        )
    )
    problems = [problem for found in counts.values() for problem in found.problems]
    if any(prefix.startswith(b"k8s:enc:kms:") for prefix in expected.values()):
        checks = lifecycle.cluster.kms_checks()
        problems += [f"{master}: {wrong}" for master, wrong in checks.items() if wrong]
    assert not problems, f"{step} ({fault}):\n" + "\n".join(problems)


# -- faults


def run_logged(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            playbook_argv(*args), cwd=REPO, env=playbook_env(), stdout=out, stderr=subprocess.STDOUT
        )


def wait_in_log(run: subprocess.Popen, log: Path, marker: str, what: str) -> None:
    wait_for(
        lambda: marker in log.read_text() or run.poll() is not None, timeout=900, what=what, interval=0.2
    )
    assert run.poll() is None, f"the run ended before {what}:\n{log.read_text()[-6000:]}"


class Fault:
    """A fault injected into one playbook run: armed before it starts, fired at its moment, checked after."""

    stops_the_run = False  # the run must fail (and restore) rather than finish

    def arm(self, lifecycle: Lifecycle) -> None:
        """Before the run starts."""

    def fire(self, lifecycle: Lifecycle, run: subprocess.Popen, log: Path) -> None:
        """While the run goes on; returns when the fault is over."""

    def disarm(self, lifecycle: Lifecycle) -> None:
        """After the run, whatever happened."""

    def check(self, lifecycle: Lifecycle, text: str) -> str:
        """The fault did happen and the run coped as it must; its description for the table."""
        raise NotImplementedError


class PluginKilled(Fault):
    """SIGKILL of a plugin container on the victim while the read phase restarts (or, with automatic reload,
    reloads) the victim's apiserver."""

    def __init__(self, pod: str, what: str, *, reload: bool = False) -> None:
        self.pod, self.what = pod, what
        self.restarts = -1
        self.reload = reload  # the read phase reloads the victim's config rather than restarting it

    def fire(self, lifecycle: Lifecycle, run: subprocess.Popen, log: Path) -> None:
        victim = lifecycle.victim
        marker = (RELOAD_MARKER if self.reload else RESTART_MARKER).format(victim.name)
        doing = "reloading" if self.reload else "restarting"
        wait_in_log(run, log, marker, f"the read phase {doing} {victim.name}")
        container = wait_for(
            lambda: (c := plugin_container(victim, self.pod)) and c.get("pid") and c,
            timeout=60,
            what=f"the {self.what} container on {victim.name}",
        )
        pid = container["pid"]
        assert os.readlink(f"/proc/{pid}/root") == str(victim.root.resolve())  # a process of this lab
        os.kill(pid, signal.SIGKILL)
        self.restarts = container["restartCount"]

    def check(self, lifecycle: Lifecycle, text: str) -> str:
        container = plugin_container(lifecycle.victim, self.pod)
        assert container and container["restartCount"] > self.restarts, container  # the fault did happen
        doing = "reload" if self.reload else "restart"
        return f"{self.what} SIGKILLed on {lifecycle.victim.name} mid read phase ({doing})"


class KmsThrottled(Fault):
    """The emulator (Tencent KMS) throttles Encrypt and Decrypt to 25/s and adds 20-60 ms to every call.
    KMS v1 calls Tencent KMS for every object written or read uncached: the throttle must bite. KMS v2 calls
    it once per DEK seed (a few calls per apiserver and key), so there the calls must have met the latency."""

    def __init__(self) -> None:
        self.before: dict[str, int] = {}
        self.counts: dict[str, int] = {}

    def arm(self, lifecycle: Lifecycle) -> None:
        admin = lifecycle.cluster.emulator.admin
        self.before = admin.call_counts()
        admin.set_latency("*", fixed_ms=20, random_ms=40)
        for action in ("Encrypt", "Decrypt"):
            admin.set_throttle(action, 25)

    def disarm(self, lifecycle: Lifecycle) -> None:
        admin = lifecycle.cluster.emulator.admin
        after = admin.call_counts()
        self.counts = {key: after[key] - self.before.get(key, 0) for key in after}
        admin.reset_faults()

    def check(self, lifecycle: Lifecycle, text: str) -> str:
        throttled = sum(n for key, n in self.counts.items() if key.endswith(":RequestLimitExceeded"))
        calls = self.counts.get("Encrypt", 0) + self.counts.get("Decrypt", 0)
        if lifecycle.scenario.flavour.kms_v2:
            assert calls > 0, self.counts  # the fault did meet the plugins' calls
            return f"KMS throttled to 25/s, +20-60 ms ({calls} Encrypt/Decrypt calls, {throttled} throttled)"
        assert throttled > 0, self.counts  # the fault did happen, and the plugins rode it out
        return f"KMS throttled to 25/s, +20-60 ms ({throttled} throttled)"


class ApiserverDown(Fault):
    """The victim's kube-apiserver cannot start again (a wrapper refuses while a fault file exists) from the
    play `after` on, until the run has put the victim's manifest back - as a broken host would until fixed."""

    stops_the_run = True

    def __init__(self, after: str = "", phase: str = "") -> None:
        self.after, self.phase = after, phase
        self.before = ""
        self.untouched: dict[str, str] = {}

    def arm(self, lifecycle: Lifecycle) -> None:
        wrapper = lifecycle.victim.path("/usr/local/sbin/kube-apiserver")  # before /usr/local/bin on the PATH
        wrapper.write_text(FAULTY_APISERVER)
        wrapper.chmod(0o755)

    def fire(self, lifecycle: Lifecycle, run: subprocess.Popen, log: Path) -> None:
        victim = lifecycle.victim
        if self.after:
            wait_in_log(run, log, self.after, self.after)
        self.before = manifest_text(victim)
        self.untouched = {m.name: manifest_text(m) for m in lifecycle.masters[2:]}
        victim.path(FAULT_FILE).touch()
        wait_for(
            lambda: manifest_text(victim) != self.before or run.poll() is not None,
            timeout=900,
            what=f"the run changing {victim.name}",
            interval=0.2,
        )
        wait_for(
            lambda: manifest_text(victim) == self.before or run.poll() is not None,
            timeout=900,
            what=f"the run restoring {victim.name}",
            interval=0.2,
        )
        victim.path(FAULT_FILE).unlink()

    def disarm(self, lifecycle: Lifecycle) -> None:
        lifecycle.victim.path(FAULT_FILE).unlink(missing_ok=True)

    def check(self, lifecycle: Lifecycle, text: str) -> str:
        victim = lifecycle.victim
        assert f"{victim.name}: " in text and "Restored the previous manifest" in text, text[-6000:]
        assert manifest_text(victim) == self.before
        for master in lifecycle.masters[2:]:  # serial 1 + any_errors_fatal: the roll stopped
            assert manifest_text(master) == self.untouched[master.name], master.name
        wait_for(
            lambda: ready(lifecycle.cluster.lab, victim),
            timeout=180,
            what=f"{victim.name} back",
            interval=0.5,
        )
        return f"{victim.name} apiserver does not come back{self.phase}: restored, stopped"


def run_with_faults(lifecycle: Lifecycle, args: list[str], faults: list[Fault], log: Path) -> str:
    """Run a playbook with `faults` (fired in their order), check it finished - or failed and restored when a
    fault stops it - and that every fault did happen; the faults' description."""
    for fault in faults:
        fault.arm(lifecycle)
    run = run_logged([*args, "-i", str(lifecycle.cluster.lab.inventory)], log)
    try:
        for fault in faults:
            fault.fire(lifecycle, run, log)
        returncode = run.wait(timeout=RUN_TIMEOUT)
    finally:
        for fault in faults:
            fault.disarm(lifecycle)
        if run.poll() is None:
            run.kill()
            run.wait()
    text = log.read_text()
    if any(fault.stops_the_run for fault in faults):
        assert returncode != 0, text[-6000:]
    else:
        assert returncode == 0, text[-6000:]
    return "; ".join(fault.check(lifecycle, text) for fault in faults) or "none"


def unchanged_run(lifecycle: Lifecycle, *args: str) -> None:
    again = lifecycle.cluster.playbook(*args)
    assert again.returncode == 0, output(again)
    assert all(changed == 0 for changed, _u, _f in recap(again).values()), output(again)


# -- refusals


def failure_text(text: str) -> str:
    """What Ansible printed about the failed tasks (its [ERROR] lines, each failed result with its indented
    lines), on one line: messages are wrapped."""
    found, inside = [], False
    for line in text.splitlines():
        if line.startswith(("fatal:", "[ERROR]:")) or "FAILED!" in line:
            inside = True
        elif not (inside and line.startswith((" ", "\t"))):
            inside = False
        if inside:
            found.append(line)
    return " ".join(" ".join(found).split())


def refusal(
    lifecycle: Lifecycle, step: str, what: str, problems: list[str], expected: dict[str, bytes]
) -> list[str]:
    """Add the refusal's row (with its outcome) and the census; the problems found."""
    outcome = "refused, nothing changed" if not problems else "NOT REFUSED CLEANLY"
    try:
        record(lifecycle, step, f"refusal: {what} -> {outcome}", expected)
    except AssertionError as exc:
        problems.append(str(exc))
    return [f"{what}: {problem}" for problem in problems]


def refuse_same_key(lifecycle: Lifecycle, log: Path) -> list[str]:
    """rotate.yml to the key in use (by alias) with tke_kms_rotate_delete_old_key=true fails before changing
    anything: no plugin, no config, no manifest, and the key stays Enabled."""
    cluster = lifecycle.cluster
    before, keys = snapshot(cluster), cluster.keys()
    run = run_logged(["playbooks/rotate.yml", "-i", str(cluster.lab.inventory), *SAME_KEY_ROTATION], log)
    problems = []
    try:
        # Anything past the key's play changes the masters: stop it there rather than let it go on.
        wait_for(
            lambda: (
                run.poll() is not None
                or "PLAY [Read phase" in log.read_text()
                or changed_since(cluster, before)
            ),
            timeout=900,
            what="rotate.yml to the key in use refusing",
            interval=0.5,
        )
        if run.poll() is None:
            problems.append("rotate.yml went on to change the masters (stopped at the read phase)")
    finally:
        if run.poll() is None:
            run.kill()
        run.wait()
    said = failure_text(log.read_text())
    key_id = keys[KEY_IN_USE][0]
    if run.returncode == 0:
        problems.append("rotate.yml finished")
    elif not problems and KEY_IN_USE not in said and key_id not in said:
        problems.append(f"the failure does not name the key in use ({KEY_IN_USE}, {key_id}):\n{said[-3000:]}")
    changed = changed_since(cluster, before)
    if changed:
        problems.append(f"changed {changed}")
        put_back(cluster, before)
    if cluster.keys() != keys:
        problems.append(f"the keys changed: {keys} -> {cluster.keys()}")
    return refusal(
        lifecycle,
        "rotate.yml",
        "rotate to the key in use",
        problems,
        lifecycle.expected(PROVIDER),
    )


def refuse_removing_provider_in_use(lifecycle: Lifecycle) -> list[str]:
    """The apiserver role's remove phase for the old provider, on master1 where the write phase made it second
    while every object is still stored with it, refuses naming it, and changes nothing."""
    cluster, master = lifecycle.cluster, lifecycle.masters[0]
    problems = []
    if providers(master)[:2] != [f"kms:{ROTATED}", f"kms:{PROVIDER}"]:
        problems.append(f"not the state to test: {master.name} has {providers(master)}")
    before = snapshot(cluster)
    run = cluster.playbook(
        "tests/lifecycle/remove_provider.yml",
        "--limit",
        master.name,
        "-e",
        f"remove_provider_name={PROVIDER}",
        "-e",
        f"remove_socket={ROTATED_SOCKET}",
    )
    said = failure_text(run.stdout)
    if run.returncode == 0:
        problems.append(f"the remove phase went through:\n{output(run)[-3000:]}")
    elif PROVIDER not in said:
        problems.append(f"the failure does not name the provider {PROVIDER}:\n{said[-3000:]}")
    changed = changed_since(cluster, before)
    if changed:
        problems.append(f"changed {changed}")
        put_back(cluster, before)
    what = f"remove {PROVIDER} while it stores every object"
    return refusal(lifecycle, "rotate.yml", what, problems, lifecycle.expected(PROVIDER))


def refuse_off_with_entries_left(lifecycle: Lifecycle) -> list[str]:
    """tke.kms.apiserver_manifest state=absent (the "off" step), run through Ansible on master1 whose config
    still has a non-identity entry, refuses naming the entry's resources, and changes nothing."""
    cluster, master = lifecycle.cluster, lifecycle.masters[0]
    left = [
        entry["resources"]
        for entry in encryption_config(master)["resources"]
        if any(label(p) != "identity" for p in entry["providers"])
    ]
    before = snapshot(cluster)
    argv = [str(VENV_BIN / "ansible"), master.name, "-i", str(cluster.lab.inventory)]
    argv += ["-m", "tke.kms.apiserver_manifest", "-a", json.dumps({"state": "absent"})]
    run = subprocess.run(
        argv, cwd=REPO, env=playbook_env(), capture_output=True, text=True, timeout=600, check=False
    )
    problems = []
    if run.returncode == 0:
        problems.append(f"the flag was taken out:\n{output(run)[-3000:]}")
    elif not all(resource in failure_text(run.stdout + run.stderr) for entry in left for resource in entry):
        problems.append(f"the failure does not name the entries left ({left}):\n{output(run)[-3000:]}")
    changed = changed_since(cluster, before)
    if changed:
        problems.append(f"changed {changed}")
        put_back(cluster, before)
    what = f"'off' with {left} still encrypted"
    return refusal(lifecycle, "disable.yml", what, problems, lifecycle.expected(None, disabled=True))


# -- the lifecycle: its steps in order on the scenario's cluster


def starting_config_step(suite: Lifecycle, tmp_path: Path) -> None:
    with suite.step("the starting config"):
        record(suite, "start", "none (objects created)", suite.expected(None))


def site_step(suite: Lifecycle, tmp_path: Path) -> None:
    start = suite.scenario.start
    with suite.step("site.yml"):
        faults: list[Fault] = []
        if suite.fault(matrix.SITE_PLUGIN_KILLED):
            faults.append(PluginKilled(PROVIDER, "plugin"))
        if suite.scenario.flavour is KUBE_1_20:
            # A cluster as kubeadm 1.20 leaves it: kube-system/kubeadm-config (the 1.36 ones have none).
            kubeadm.seed(suite.cluster.lab)
        described = run_with_faults(suite, ["site.yml"], faults, tmp_path / "site.log")
        if suite.scenario.flavour is KUBE_1_20:  # what kubeadm upgrade would write keeps the flag and mounts
            kubeadm.assert_carries(kubeadm.regenerated(suite.cluster.lab), CONFIG, "/var/run/tke-kms-plugin")
        for master in suite.masters:
            for resource in start.kms_resources:
                assert providers(master, resource)[0] == f"kms:{PROVIDER}", (master.name, resource)
            # The starting keys stay: they read what is not rewritten yet, and what etcd backups hold.
            for entry in (suite.start_config or {}).get("resources", []):
                kept = entry_of(encryption_config(master), entry["resources"][0]).get("providers", [])
                lost = [p for p in entry["providers"] if p not in kept]
                assert not lost, (
                    f"{master.name}: the starting {[label(p) for p in lost]} gone from {entry['resources']}"
                )
            assert_kms_api(suite, master, PROVIDER)
        record(suite, "site.yml", described, suite.expected(PROVIDER))
        if suite.scenario.audit:
            audit_after_site(suite)


def assert_kms_api(suite: Lifecycle, master: Master, provider: str) -> None:
    """The provider speaks the KMS API of these masters, and KMS v1 is re-enabled only where it is used."""
    kms = next(p["kms"] for p in entry_of(encryption_config(master), "secrets")["providers"] if "kms" in p)
    assert kms.get("apiVersion", "v1") == suite.scenario.flavour.kms_api, (master.name, provider, kms)
    if suite.scenario.flavour.kms_v2:
        assert "KMSv1" not in manifest_text(master), f"{master.name}: KMS v1 switched on for a v2 provider"


def audit_after_site(suite: Lifecycle) -> None:
    """site.yml once more changes nothing; playbooks/verify.yml passes, changes nothing, rewrites nothing."""
    unchanged_run(suite, "site.yml")
    record(suite, "site.yml again", "none (changed=0)", suite.expected(PROVIDER))
    before = suite.cluster.etcd_values("secrets", "default")
    audit = suite.cluster.playbook("playbooks/verify.yml")
    assert audit.returncode == 0, output(audit)
    said = " ".join(audit.stdout.split())
    stored = f"stored in etcd as kms:{suite.scenario.flavour.kms_api}:{PROVIDER}"
    assert stored in said and " 0 not yet stored" in said, output(audit)
    assert all(changed == 0 for changed, _u, _f in recap(audit).values()), output(audit)
    assert suite.cluster.etcd_values("secrets", "default") == before  # the probe Secret is gone again
    record(suite, "verify.yml", "none (passes, changed=0)", suite.expected(PROVIDER))
    # playbooks/status.yml: one table, every master agrees (read-only, like the audit).
    status = suite.cluster.playbook("playbooks/status.yml")
    assert status.returncode == 0 and "all masters agree" in status.stdout, output(status)
    source = "metrics" if suite.scenario.flavour.reload else "inferred: started after the file changed"
    row = next(line for line in status.stdout.splitlines() if "running config from" in line)
    assert row.count(source) == suite.scenario.masters, output(status)
    assert f"{PROVIDER} {suite.scenario.flavour.kms_api}" in status.stdout, output(status)


def apiserver_processes(suite: Lifecycle) -> dict[str, tuple[str, int] | None]:
    """master -> (pod uid, PID) of its kube-apiserver container."""
    found: dict[str, tuple[str, int] | None] = {}
    for master in suite.masters:
        pod = master.pod("kube-apiserver")
        containers = (pod or {}).get("containers") or [{}]
        found[master.name] = (pod["uid"], containers[0].get("pid")) if pod else None
    return found


def rotate_step(suite: Lifecycle, tmp_path: Path) -> None:
    start, cluster = suite.scenario.start, suite.cluster
    problems: list[str] = []
    with suite.step("rotate.yml"):
        if suite.scenario.same_key_refusal:
            problems += refuse_same_key(suite, tmp_path / "rotate-same-key.log")
        faults: list[Fault] = []
        if suite.fault(matrix.ROTATE_NEW_PLUGIN_KILLED):
            faults.append(PluginKilled(ROTATED, "new plugin", reload=suite.scenario.flavour.reload))
        if suite.fault(matrix.ROTATE_APISERVER_DOWN):
            faults.append(ApiserverDown(WRITE_PHASE_MARKER, " in the write phase"))
            described = run_with_faults(
                suite, ["playbooks/rotate.yml", *ROTATION], faults, tmp_path / "rotate-1.log"
            )
            record(suite, "rotate.yml", described, suite.expected(PROVIDER))
            problems += refuse_removing_provider_in_use(suite)
            faults = []
        if suite.fault(matrix.ROTATE_KMS_THROTTLED):
            faults.append(KmsThrottled())
        processes = apiserver_processes(suite)
        described = run_with_faults(
            suite, ["playbooks/rotate.yml", *ROTATION], faults, tmp_path / "rotate.log"
        )
        if suite.scenario.flavour.reload:  # every apiserver took the new configs without a restart
            assert apiserver_processes(suite) == processes, (processes, apiserver_processes(suite))
            described += "; no apiserver restarted"
        if suite.fault(matrix.ROTATE_APISERVER_DOWN) and described == "none":
            described = "none (run again after the fault)"
        for master in suite.masters:
            for resource in start.kms_resources:
                assert providers(master, resource)[0] == f"kms:{ROTATED}", (master.name, resource)
            for resource in RESOURCES:
                assert f"kms:{PROVIDER}" not in providers(master, resource), (master.name, resource)
            assert not master.pods(PROVIDER), f"{master.name} still runs the old plugin"
            assert master.pods(ROTATED), f"{master.name} does not run the new plugin"
            assert_kms_api(suite, master, ROTATED)
        states = cluster.key_states()
        assert (states[KEY_IN_USE], states[NEW_KEY]) == ("PendingDelete", "Enabled"), states
        record(suite, "rotate.yml", described, suite.expected(ROTATED))
        if suite.scenario.idempotence:
            unchanged_run(suite, "playbooks/rotate.yml", *ROTATION)
    assert not problems, "\n".join(problems)


def disable_step(suite: Lifecycle, tmp_path: Path) -> None:
    start = suite.scenario.start
    problems: list[str] = []
    with suite.step("disable.yml"):
        described = "none"
        if suite.fault(matrix.DISABLE_APISERVER_DOWN):
            faults: list[Fault] = [ApiserverDown()]
            args = ["playbooks/disable.yml", *AFTER_ROTATION]
            described = run_with_faults(suite, args, faults, tmp_path / "disable-faulty.log")
            assert providers(suite.masters[0])[0] == "identity"  # master1 was done before the fault
            # With automatic reload the decrypt phase restarts nothing: the fault hits master2's last roll,
            # which takes the flag out after every object was rewritten in the clear.
            reload = suite.scenario.flavour.reload
            at_fault = suite.expected(None, disabled=True) if reload else suite.expected(ROTATED)
            record(suite, "disable.yml", described, at_fault)
            described = "none (run again after the fault)"
        processes = apiserver_processes(suite)
        run_with_faults(suite, ["playbooks/disable.yml", *AFTER_ROTATION], [], tmp_path / "disable.log")
        if suite.scenario.flavour.reload and start.entries:  # the flag stays: every step was a reload
            assert apiserver_processes(suite) == processes, (processes, apiserver_processes(suite))
            described += "; no apiserver restarted"
        if suite.scenario.flavour is KUBE_1_20:  # kubeadm upgrade must not bring back what disable took out
            regenerated = kubeadm.regenerated(suite.cluster.lab)
            if FLAG in manifest_text(suite.masters[0]):  # entries that still encrypt keep the flag
                kubeadm.assert_carries(regenerated, CONFIG, "/var/run/tke-kms-plugin")
            else:
                kubeadm.assert_carries_none(regenerated)
        for master in suite.masters:
            assert not master.pods(ROTATED), f"{master.name} still runs the plugin"
            if not start.entries:
                assert FLAG not in manifest_text(master), master.name
            if start.untouched_entries:  # its objects are still encrypted: the apiserver needs the config
                assert FLAG in manifest_text(master), master.name
        record(suite, "disable.yml", described, suite.expected(None, disabled=True))
        if suite.scenario.idempotence:
            unchanged_run(suite, "playbooks/disable.yml", *AFTER_ROTATION)
        config = encryption_config(suite.masters[0])
        left = config and any(label(p) != "identity" for e in config["resources"] for p in e["providers"])
        if left and FLAG in manifest_text(suite.masters[0]):
            problems += refuse_off_with_entries_left(suite)
    assert not problems, "\n".join(problems)


STEPS = {
    "start": starting_config_step,
    "site.yml": site_step,
    "rotate.yml": rotate_step,
    "disable.yml": disable_step,
}


@pytest.mark.timeout(4 * 3600)
@pytest.mark.parametrize("step", list(STEPS))
@pytest.mark.parametrize("scenario", matrix.SCENARIOS, ids=[s.id for s in matrix.SCENARIOS])
def test_lifecycle(lanes: dict, scenario: matrix.Scenario, step: str) -> None:
    """One step of one scenario's lifecycle: it ran in the scenario's lane; its outcome."""
    outcome = lanes[scenario.id][step]
    outcome.done.wait()
    if outcome.error is not None:
        raise outcome.error
