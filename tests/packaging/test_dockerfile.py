"""The plugin image's Dockerfile (no Docker engine here to build it): two stages, a base image that can be
pinned by digest, a HEALTHCHECK and an ENTRYPOINT that are real CLI commands, and the user the collection's
pod runs the plugin as."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.tke.kms.plugins.module_utils import _plugin_pod as pod
from ansible_collections.tke.kms.plugins.modules import kms_plugin

from tests.fixtures.plugin import plugin_command

DOCKERFILE = Path(__file__).resolve().parents[2] / "plugin_server" / "Dockerfile"
PYPROJECT = DOCKERFILE.with_name("pyproject.toml")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with comments dropped and continuation lines joined."""
    logical, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        logical.append(pending)
        pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1].strip()) for text in logical]


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list), f"not exec form: {arguments}"
    return value


def rendered_pod_specs() -> list[dict[str, Any]]:
    """What tke.kms.kms_plugin renders with its defaults, for each credentials source."""
    defaults = {name: spec.get("default") for name, spec in kms_plugin.argument_spec().items()}
    base = dict(
        defaults, image="registry.example.com/tke-kms-plugin:0.1.0", region="ap-guangzhou", key_id="k"
    )
    sources = {
        "file": {},
        "cvm_role": {"cvm_role": "role"},
        "env": {"env_secret_id": "i", "env_secret_key": "s"},
    }
    return [pod.pod_spec(dict(base, credentials_source=s, **extra)) for s, extra in sources.items()]


def test_two_stages_the_final_one_installs_only_the_built_wheel() -> None:
    steps = instructions()
    froms = [args for name, args in steps if name == "FROM"]
    assert froms == ["${BASE_IMAGE} AS builder", "${BASE_IMAGE}"]
    final = steps[[i for i, (name, _) in enumerate(steps) if name == "FROM"][-1] :]
    copies = [args for name, args in final if name == "COPY"]
    assert copies == ["--from=builder /wheels /wheels"]
    assert any(name == "RUN" and "pip install /wheels/*.whl" in args for name, args in final)


def test_base_image_is_a_build_argument_declared_before_from() -> None:
    steps = instructions()
    # Before the first FROM, so both stages use it; --build-arg BASE_IMAGE=python:3.11-slim@sha256:...
    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.11-slim")
    assert [name for name, _ in steps].index("FROM") == 1


def test_user_is_the_run_as_user_the_collection_renders() -> None:
    (user,) = [args for name, args in instructions() if name == "USER"]
    uid = int(user.split(":")[0])
    rendered = {
        container["securityContext"]["runAsUser"]
        for spec in rendered_pod_specs()
        for container in spec["containers"]
    }
    assert rendered == {uid}


def test_entrypoint_and_healthcheck_are_the_commands_the_pod_uses() -> None:
    steps = dict(instructions())
    spec = rendered_pod_specs()[0]
    (container,) = spec["containers"]
    assert exec_form(steps["ENTRYPOINT"]) == container["command"]
    options, _, command = steps["HEALTHCHECK"].partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    assert exec_form(command) == container["livenessProbe"]["exec"]["command"]


@pytest.mark.parametrize("subcommand", [[], ["health-check"]])
def test_the_image_commands_exist_in_the_cli(subcommand: list[str]) -> None:
    """The ENTRYPOINT is the tke-kms-plugin console script; HEALTHCHECK's subcommand and flag are real."""
    result = subprocess.run(
        [*plugin_command(), *subcommand, "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    if subcommand:
        (healthcheck,) = [args for name, args in instructions() if name == "HEALTHCHECK"]
        flags = [
            word.split("=")[0]
            for word in exec_form(healthcheck.partition("CMD ")[2])
            if word.startswith("--")
        ]
        assert flags and all(flag in result.stdout for flag in flags)


def test_entrypoint_path_links_the_console_script() -> None:
    """/tke-kms-plugin (the pod's command) links the console script plugin_server/pyproject.toml defines."""
    scripts = tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]
    assert "tke-kms-plugin" in scripts
    runs = " ".join(args for name, args in instructions() if name == "RUN")
    assert "ln -s /usr/local/bin/tke-kms-plugin /tke-kms-plugin" in runs
