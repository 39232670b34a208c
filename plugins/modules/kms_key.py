#!/usr/bin/python
# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: kms_key
short_description: Manage a Tencent Cloud KMS key (CMK)
version_added: 0.1.0
description:
  - Creates, updates, enables, disables and schedules the deletion of a Tencent Cloud KMS customer master key,
    and
    manages its automatic rotation.
  - The key is found by its exact O(alias) (a paged C(ListKeyDetail) search, then an exact match, because the
    service's search is fuzzy) or by O(key_id).
  - This is the key the C(tke-kms-plugin) encrypts the Kubernetes data encryption keys with.
options:
  alias:
    description:
      - Alias of the key. Required to create a key.
      - 1 to 60 letters, digits, V(-) or V(_), starting with a letter or a digit; the prefix V(kms-) is
        reserved.
      - With O(key_id), the key is renamed to this alias when it has another one.
    type: str
  key_id:
    description:
      - Id of an existing key. Takes precedence over O(alias) to find the key. A key cannot be created with a
        given id.
    type: str
  description:
    description:
      - Description of the key (at most 1024 bytes). Updated when it differs. Left as is when not set.
    type: str
  key_usage:
    description:
      - What the key is for. Only set at creation; a different usage on an existing key is an error.
      - The KMS plugin needs V(ENCRYPT_DECRYPT), the default at creation. Asymmetric usages include
        V(ASYMMETRIC_DECRYPT_RSA_2048), V(ASYMMETRIC_DECRYPT_SM2), V(ASYMMETRIC_SIGN_VERIFY_SM2),
        V(ASYMMETRIC_SIGN_VERIFY_ECC), V(ASYMMETRIC_SIGN_VERIFY_RSA_2048) and
        V(ASYMMETRIC_SIGN_VERIFY_ECDSA384).
    type: str
  key_type:
    description:
      - Origin of the key material. V(TENCENT_KMS) (default at creation) lets KMS generate it; V(EXTERNAL)
        creates
        a key waiting for imported material (state C(PendingImport)).
      - Only set at creation; a different origin on an existing key is an error.
    type: str
    choices: [TENCENT_KMS, EXTERNAL]
    aliases: [type]
  tags:
    description:
      - Tags to attach when the key is created. The KMS API cannot change the tags of an existing key, so they
        are
        not compared afterwards.
    type: dict
  state:
    description:
      - V(present) makes sure the key exists (a new key is enabled); it cancels a scheduled deletion, which
        leaves
        the key disabled.
      - V(enabled) and V(disabled) also set whether the key can be used. Disabling the key the plugin uses
        stops
        the Kubernetes API servers from reading Secrets.
      - V(absent) disables the key and schedules its deletion after O(pending_window_days) days. A key already
        pending deletion is left as is. Until the deletion date a run with another state brings it back.
    type: str
    choices: [present, enabled, disabled, absent]
    default: present
  rotation:
    description:
      - Whether KMS rotates the key material automatically. Old material stays usable for decryption, so
        rotation
        does not make existing ciphertext unreadable.
      - Left as is when not set.
    type: bool
  rotate_days:
    description:
      - Rotation period in days (7 to 365) when O(rotation=true). The service default is 365.
    type: int
  pending_window_days:
    description:
      - Days (7 to 30) between O(state=absent) and the actual deletion, during which the deletion can be
        cancelled.
    type: int
    default: 30
extends_documentation_fragment:
  - tke.kms.tencentcloud
  - tke.kms.attributes
  - tke.kms.attributes.MUTATING
  - tke.kms.attributes.TENCENTCLOUD_GROUP
author:
  - tke.kms maintainers (@tke-kms)
"""

EXAMPLES = r"""
- name: Create the key that encrypts Kubernetes Secrets, with yearly rotation
  tke.kms.kms_key:
    alias: k8s-prod-secrets
    description: Kubernetes Secret encryption at rest (cluster prod)
    tags:
      cluster: prod
    state: enabled
    rotation: true
    rotate_days: 365
    region: ap-guangzhou
  register: kms

- name: Set the credentials once for every Tencent Cloud task
  module_defaults:
    group/tke.kms.tencentcloud:
      region: ap-guangzhou
      secret_id: "{{ vault_tencent_secret_id }}"
      secret_key: "{{ vault_tencent_secret_key }}"
  block:
    - name: Disable an old key
      tke.kms.kms_key:
        key_id: 23e80852-1e38-11e9-b129-5cb9019b4b01
        state: disabled

    - name: Schedule the deletion of a key that no longer protects any data
      tke.kms.kms_key:
        alias: k8s-old-secrets
        state: absent
        pending_window_days: 30

- name: Work against the local KMS emulator
  tke.kms.kms_key:
    alias: test-key
    endpoint: http://127.0.0.1:18765
    region: ap-guangzhou
"""

RETURN = r"""
key:
  description:
    - The key as C(DescribeKey) reports it (KMS API names), after the changes. Empty when the key does not
      exist.
    - In check mode, the key as it would be; a key that would be created has no C(KeyId).
  returned: always
  type: dict
  contains:
    KeyId:
      description: Id of the key.
      type: str
      sample: 23e80852-1e38-11e9-b129-5cb9019b4b01
    Alias:
      description: Alias of the key.
      type: str
      sample: k8s-prod-secrets
    Description:
      description: Description of the key.
      type: str
    KeyState:
      description: C(Enabled), C(Disabled), C(PendingDelete), C(PendingImport) or C(Archived).
      type: str
      sample: Enabled
    KeyUsage:
      description: Usage of the key.
      type: str
      sample: ENCRYPT_DECRYPT
    KeyRotationEnabled:
      description: Whether automatic rotation is on.
      type: bool
    RotateDays:
      description: Rotation period in days, when the service reports it.
      type: int
    DeletionDate:
      description: Unix time of the deletion when the key is C(PendingDelete).
      type: int
    CreateTime:
      description: Unix time of the creation.
      type: int
    Origin:
      description: C(TENCENT_KMS) or C(EXTERNAL).
      type: str
  sample:
    KeyId: 23e80852-1e38-11e9-b129-5cb9019b4b01
    Alias: k8s-prod-secrets
    KeyState: Enabled
    KeyUsage: ENCRYPT_DECRYPT
    KeyRotationEnabled: true
actions:
  description: The KMS API actions called, or that would be called in check mode, in order.
  returned: always
  type: list
  elements: str
  sample: [CreateKey, EnableKeyRotation]
"""

import typing as t

from ansible_collections.tke.kms.plugins.module_utils._errors import TkeKmsError
from ansible_collections.tke.kms.plugins.module_utils._kms_keys import (
    KEY_TYPES,
    alias_problem,
    describe_key,
    find_key_by_alias,
    rotation_enabled,
)
from ansible_collections.tke.kms.plugins.module_utils._tencentcloud import TencentKmsModule

DEFAULT_KEY_USAGE = "ENCRYPT_DECRYPT"
# The fields this module manages, shown in the diff.
VIEW_FIELDS = ("Alias", "Description", "KeyState", "KeyUsage", "Origin", "KeyRotationEnabled", "RotateDays")


class Step(t.NamedTuple):
    """One KMS call of the plan and what it does to the key (applied to the prediction in check mode)."""

    action: str
    params: t.Dict[str, t.Any]
    effect: t.Dict[str, t.Any]


def parameter_problems(params: t.Dict[str, t.Any]) -> t.List[str]:
    problems = []
    if params["alias"] is not None:
        problem = alias_problem(params["alias"])
        if problem:
            problems.append(problem)
    if params["rotate_days"] is not None:
        if params["rotation"] is not True:
            problems.append("rotate_days needs rotation=true")
        elif not 7 <= params["rotate_days"] <= 365:
            problems.append("rotate_days must be between 7 and 365, got %d" % params["rotate_days"])
    if not 7 <= params["pending_window_days"] <= 30:
        problems.append(
            "pending_window_days must be between 7 and 30, got %d" % params["pending_window_days"]
        )
    return problems


def immutable_conflicts(key: t.Dict[str, t.Any], params: t.Dict[str, t.Any]) -> t.List[str]:
    """Properties KMS cannot change on an existing key."""
    conflicts = []
    if params["key_usage"] and key.get("KeyUsage") and params["key_usage"] != key["KeyUsage"]:
        conflicts.append("key_usage is %s, not %s" % (key["KeyUsage"], params["key_usage"]))
    if params["key_type"] and key.get("Origin") and params["key_type"] != key["Origin"]:
        conflicts.append("key_type is %s, not %s" % (key["Origin"], params["key_type"]))
    return conflicts


def creation_step(params: t.Dict[str, t.Any]) -> Step:
    key_type = params["key_type"] or "TENCENT_KMS"
    request: t.Dict[str, t.Any] = dict(
        Alias=params["alias"], KeyUsage=params["key_usage"] or DEFAULT_KEY_USAGE, Type=KEY_TYPES[key_type]
    )
    if params["description"] is not None:
        request["Description"] = params["description"]
    if params["tags"]:
        request["Tags"] = [dict(TagKey=str(k), TagValue=str(v)) for k, v in sorted(params["tags"].items())]
    effect = dict(
        Alias=request["Alias"],
        Description=params["description"] or "",
        KeyState="PendingImport" if key_type == "EXTERNAL" else "Enabled",
        KeyUsage=request["KeyUsage"],
        Origin=key_type,
        KeyRotationEnabled=False,
    )
    return Step("CreateKey", request, effect)


def plan_absent(key: t.Optional[t.Dict[str, t.Any]], params: t.Dict[str, t.Any]) -> t.List[Step]:
    if key is None or key.get("KeyState") == "PendingDelete":
        return []
    steps = []
    if key.get("KeyState") == "Enabled":
        steps.append(Step("DisableKey", {}, dict(KeyState="Disabled")))
    window = dict(PendingWindowInDays=params["pending_window_days"])
    steps.append(Step("ScheduleKeyDeletion", window, dict(KeyState="PendingDelete")))
    return steps


def plan_existing(key: t.Dict[str, t.Any], params: t.Dict[str, t.Any]) -> t.List[Step]:
    """Alias, description and a scheduled deletion of a key that exists."""
    steps = []
    alias, description = params["alias"], params["description"]
    if alias is not None and alias != key.get("Alias"):
        steps.append(Step("UpdateAlias", dict(Alias=alias), dict(Alias=alias)))
    if description is not None and description != (key.get("Description") or ""):
        steps.append(
            Step("UpdateKeyDescription", dict(Description=description), dict(Description=description))
        )
    if key.get("KeyState") == "PendingDelete":
        steps.append(Step("CancelKeyDeletion", {}, dict(KeyState="Disabled", DeletionDate=0)))
    return steps


def plan_rotation(view: t.Dict[str, t.Any], params: t.Dict[str, t.Any]) -> t.List[Step]:
    days = params["rotate_days"]
    if params["rotation"] is True:
        days_differ = days is not None and view.get("RotateDays") not in (None, days)
        if view.get("KeyRotationEnabled") and not days_differ:
            return []
        if days is None:
            return [Step("EnableKeyRotation", {}, dict(KeyRotationEnabled=True))]
        return [
            Step("EnableKeyRotation", dict(RotateDays=days), dict(KeyRotationEnabled=True, RotateDays=days))
        ]
    if params["rotation"] is False and view.get("KeyRotationEnabled"):
        return [Step("DisableKeyRotation", {}, dict(KeyRotationEnabled=False))]
    return []


def plan(key: t.Optional[t.Dict[str, t.Any]], params: t.Dict[str, t.Any]) -> t.List[Step]:
    """The KMS calls that take `key` (None when missing) to the requested state, in a valid order.

    Pure: the caller runs the steps (or only predicts their effect in check mode).
    """
    if params["state"] == "absent":
        return plan_absent(key, params)
    steps = [creation_step(params)] if key is None else plan_existing(key, params)
    view = dict(key or {})
    for step in steps:
        view.update(step.effect)
    if params["state"] == "enabled" and view.get("KeyState") == "Disabled":
        steps.append(Step("EnableKey", {}, dict(KeyState="Enabled")))
    # Rotation before disabling: KMS only changes the rotation of a usable key.
    steps.extend(plan_rotation(view, params))
    if params["state"] == "disabled" and view.get("KeyState") == "Enabled":
        steps.append(Step("DisableKey", {}, dict(KeyState="Disabled")))
    return steps


def view_of(key: t.Optional[t.Dict[str, t.Any]]) -> t.Dict[str, t.Any]:
    if not key:
        return {}
    return dict((field, key.get(field)) for field in VIEW_FIELDS if key.get(field) is not None)


class KeyManager:
    """Finds the key, plans, runs (or predicts) the steps and reports."""

    def __init__(self, module: TencentKmsModule) -> None:
        self.module = module
        self.params = module.params
        self.kms = module.kms

    def find(self) -> t.Optional[t.Dict[str, t.Any]]:
        if self.params["key_id"]:
            key = describe_key(self.kms, self.params["key_id"])
        else:
            key = find_key_by_alias(self.kms, self.params["alias"])
        if key is not None:
            key = dict(key, KeyRotationEnabled=rotation_enabled(self.kms, key))
        return key

    def check_alias_is_free(self, key: t.Dict[str, t.Any]) -> None:
        """Renaming onto another key's alias fails in KMS; say which key holds it (also in check mode)."""
        holder = find_key_by_alias(self.kms, self.params["alias"])
        if holder is not None and holder.get("KeyId") != key.get("KeyId"):
            self.module.fail_json(
                msg="alias %r already belongs to key %s (state %s); choose another alias or remove that key"
                % (self.params["alias"], holder.get("KeyId"), holder.get("KeyState")),
                key=key,
            )

    def run(self) -> t.Dict[str, t.Any]:
        key = self.find()
        if key is None and self.params["state"] != "absent" and not self.params["alias"]:
            self.module.fail_json(
                msg="key %s does not exist; to create a key give an alias (a key id cannot be chosen)"
                % self.params["key_id"]
            )
        if key is not None and self.params["state"] != "absent":
            conflicts = immutable_conflicts(key, self.params)
            if conflicts:
                self.module.fail_json(
                    msg="key %s cannot be changed that way: %s; create a new key instead"
                    % (key.get("KeyId"), "; ".join(conflicts)),
                    key=key,
                )

        steps = plan(key, self.params)
        if key is not None and any(step.action == "UpdateAlias" for step in steps):
            self.check_alias_is_free(key)

        after = dict(key or {})
        key_id = after.get("KeyId")
        for step in steps:
            if not self.module.check_mode:
                request = dict(step.params) if step.action == "CreateKey" else dict(step.params, KeyId=key_id)
                response = self.kms.call(step.action, request)
                if step.action == "CreateKey":
                    key_id = response["KeyId"]
            after.update(step.effect)

        if steps and not self.module.check_mode:
            current = describe_key(self.kms, key_id)
            after = dict(current, KeyRotationEnabled=rotation_enabled(self.kms, current)) if current else {}

        result: t.Dict[str, t.Any] = dict(
            changed=bool(steps), key=after, actions=[step.action for step in steps]
        )
        if self.module._diff:
            result["diff"] = dict(before=view_of(key), after=view_of(after) if after else {})
        return result


def main() -> None:
    module = TencentKmsModule(
        argument_spec=dict(
            alias=dict(type="str"),
            key_id=dict(type="str"),
            description=dict(type="str"),
            key_usage=dict(type="str"),
            key_type=dict(type="str", choices=list(KEY_TYPES), aliases=["type"]),
            tags=dict(type="dict"),
            state=dict(type="str", choices=["present", "enabled", "disabled", "absent"], default="present"),
            rotation=dict(type="bool"),
            rotate_days=dict(type="int"),
            pending_window_days=dict(type="int", default=30),
        ),
        required_one_of=[("alias", "key_id")],
        supports_check_mode=True,
    )
    problems = parameter_problems(module.params)
    if problems:
        module.fail_json(msg="; ".join(problems))
    try:
        module.exit_json(**KeyManager(module).run())
    except TkeKmsError as exc:
        module.fail_from_exception(exc)


if __name__ == "__main__":
    main()
