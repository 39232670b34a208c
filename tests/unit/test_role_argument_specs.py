"""Every role documents the defaults it really has: meta/argument_specs.yml and defaults/main.yml name the
same options, a literal default is the same in both, and a computed one (Jinja) is explained in words - which
`ansible-doc -t role` then shows to users."""

from __future__ import annotations

import json
import os
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLES = sorted(path.parent.parent.name for path in REPO.glob("roles/*/meta/argument_specs.yml"))
# `{{ tke_kms_X | default(LITERAL) }}` or `{{ tke_kms_X | default(tke_kms_Y | default(LITERAL)) }}`: the
# collection-wide variables in turn, else a literal.
FALLBACK = re.compile(r"^\{\{\s*(?P<chain>tke_kms_\w+\s*\|\s*default\(.*)\)\s*\}\}$")
LINK = re.compile(r"^(tke_kms_\w+)\s*\|\s*default\((.*)\)$")
# Set in defaults/main.yml for the role's own tasks, not options a user sets.
INTERNAL: dict[str, set[str]] = {}


def defaults(role: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text()) or {}


def options(role: str) -> dict[str, dict[str, Any]]:
    spec = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return spec["argument_specs"]["main"]["options"]


def description(option: dict[str, Any]) -> str:
    text = option.get("description", "")
    return " ".join(text) if isinstance(text, list) else text


def says_default(option: dict[str, Any]) -> bool:
    return re.search(r"\bdefault\b", description(option), re.IGNORECASE) is not None


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_argument_spec_name_the_same_options(role: str) -> None:
    in_defaults = set(defaults(role)) - INTERNAL.get(role, set())
    in_spec = set(options(role))
    assert sorted(in_defaults - in_spec) == [], "in defaults/main.yml, not documented"
    assert sorted(in_spec - in_defaults) == [], "documented, without a default in defaults/main.yml"


def expected_default(value: Any) -> tuple[bool, Any, list[str]]:
    """(is there a literal to document, that literal, the collection-wide variables it falls back to)."""
    if not (isinstance(value, str) and "{{" in value):
        return True, value, []
    fallback = FALLBACK.match(value.strip())
    if fallback is None:
        return False, None, []
    variables, rest = [], fallback["chain"] + ")"
    while link := LINK.match(rest.strip()):
        variables.append(link[1])
        rest = link[2]
    variable = re.fullmatch(r"[A-Za-z_]\w*", rest.strip()) and rest.strip().lower() not in ("true", "false")
    if "|" in rest or "{{" in rest or variable:
        return False, None, []  # a filter or another variable: computed
    return True, yaml.safe_load(rest), variables


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_documented_as_it_behaves(role: str) -> None:
    spec = options(role)
    wrong = []
    for name, value in defaults(role).items():
        if name not in spec:
            continue
        literal, wanted, variables = expected_default(value)
        option = spec[name]
        if literal and option.get("default") != wanted:
            wrong.append(f"{name}: argument spec default {option.get('default')!r}, the role uses {wanted!r}")
        for variable in variables:
            if variable not in description(option):
                wrong.append(f"{name}: the description does not say it falls back to {variable}")
        if not literal and not says_default(option):
            wrong.append(f"{name}: computed default ({value}) not described in words")
        if not literal and "default" in option:
            shown = option["default"]
            wrong.append(f"{name}: computed default ({value}) documented as the literal {shown!r}")
    assert wrong == []


@cache
def role_docs() -> dict[str, Any]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    argv = [str(REPO / ".venv" / "bin" / "ansible-doc"), "-t", "role", "--json"]
    done = subprocess.run(
        argv + [f"tke.kms.{role}" for role in ROLES],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(done.stdout)


@pytest.mark.parametrize("role", ROLES)
def test_ansible_doc_shows_no_undocumented_null_default(role: str) -> None:
    shown = role_docs()[f"tke.kms.{role}"]["entry_points"]["main"]["options"]
    assert shown.keys() == options(role).keys()
    silent = [
        name
        for name, option in shown.items()
        if option.get("default") is None and not option.get("required") and not says_default(option)
    ]
    assert silent == []


def test_the_role_playbooks_in_docs_set_only_existing_options() -> None:
    """Every role option docs/roles.md sets exists in that role's argument spec."""
    text = (REPO / "docs" / "roles.md").read_text()
    known = set().union(*(options(role) for role in ROLES))
    prefixes = tuple(f"{role}_" for role in ROLES)
    named = set(re.findall(r"^\s+(\w+):", text, re.MULTILINE))
    named = {name for name in named if name.startswith(prefixes)}
    assert named, "docs/roles.md sets no role option"
    assert sorted(named - known) == []
