#!/usr/bin/python
# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: restore_file
short_description: Put a backup of a master's file back in place atomically, without a stray file next to it
version_added: 0.1.0
description:
  - Puts the copy O(src) that another module of this collection made (its C(backup_file)) back at O(dest) -
    the kube-apiserver manifest or the encryption configuration, when a rollout step did not work out - or
    writes O(content), a previous content kept in memory (the plugin's credentials file, of which no backup
    file is ever made).
  - The content is written to a dotfile in the directory of O(dest), synced to disk and renamed over
    O(dest), so O(dest) is always either the old or the restored file, and no other file ever appears in that
    directory. This matters in C(/etc/kubernetes/manifests), where kubelet runs every file that is not a
    dotfile as a static pod (the temporary file of M(ansible.builtin.copy) with C(remote_src) is not one).
  - The restored file gets O(mode), O(owner) and O(group); by default those of O(src) (the backups of this
    collection keep the original file's mode and owner), or with O(content) the owner of O(dest). It is
    never readable with looser permissions on the way.
  - Nothing changes when O(dest) already has that content, mode and owner.
extends_documentation_fragment:
  - tke.kms.attributes
  - tke.kms.attributes.MUTATING
options:
  src:
    description: The backup to put back, on the master. Exactly one of O(src) and O(content) is required.
    type: path
  content:
    description:
      - The content to put back instead of a backup file. Never logged. Requires O(mode).
    type: str
  dest:
    description: The file to restore; its directory must exist.
    type: path
    required: true
  mode:
    description: Octal mode of the restored file, for example V(0600). Default - the mode of O(src).
    type: str
  owner:
    description: User name or id that owns the restored file. Default - the owner of O(src).
    type: str
  group:
    description: Group name or id of the restored file. Default - the group of O(src).
    type: str
notes:
  - The diff shows both contents; set C(no_log) on the task when the file holds credentials.
  - With O(content) the module arguments carry the content; it is masked in every output, but keep C(no_log)
    on the task too.
seealso:
  - module: tke.kms.apiserver_manifest
  - module: tke.kms.encryption_config
author:
  - tke.kms maintainers (@tke-kms)
"""

EXAMPLES = r"""
- name: Put back the previous kube-apiserver manifest
  tke.kms.restore_file:
    src: "{{ apiserver_manifest_result.backup_file }}"
    dest: /etc/kubernetes/manifests/kube-apiserver.yaml

- name: Put back the previous encryption config, root only
  tke.kms.restore_file:
    src: "{{ encryption_config_result.backup_file }}"
    dest: /etc/kubernetes/encryption-provider-config.yaml
    owner: root
    group: root
    mode: "0600"

- name: Put back the credentials file kept in memory (slurp) before the change
  tke.kms.restore_file:
    content: "{{ previous_credentials.content | b64decode }}"
    dest: /etc/kubernetes/tke-kms-plugin/credentials
    owner: root
    group: root
    mode: "0600"
  no_log: true
"""

RETURN = r"""
dest:
  description: The restored file.
  returned: always
  type: str
  sample: /etc/kubernetes/manifests/kube-apiserver.yaml
checksum:
  description: SHA-256 of the content of O(dest) after the run (in check mode, as it would be).
  returned: success
  type: str
mode:
  description: Octal mode of O(dest) after the run.
  returned: success
  type: str
  sample: "0600"
"""

import grp
import hashlib
import os
import pwd
import stat
import typing as t

from ansible_collections.tke.kms.plugins.module_utils._errors import InvalidValue
from ansible_collections.tke.kms.plugins.module_utils._files import atomic_write, read_text
from ansible_collections.tke.kms.plugins.module_utils._module import TkeKmsModule


def argument_spec() -> t.Dict[str, t.Any]:
    return dict(
        src=dict(type="path"),
        content=dict(type="str", no_log=True),
        dest=dict(type="path", required=True),
        mode=dict(type="str"),
        owner=dict(type="str"),
        group=dict(type="str"),
    )


def parse_mode(value: str) -> int:
    """An octal mode string ("0600", "644"); ValueError for anything else."""
    if not value.isdigit() or any(c in "89" for c in value) or int(value, 8) > 0o7777:
        raise InvalidValue("mode %r is not an octal file mode such as 0600" % value)
    return int(value, 8)


def resolve_id(value: str, lookup: t.Callable[[str], t.Any], what: str) -> int:
    """A user or group id from a name or a number."""
    if value.isdigit():
        return int(value)
    try:
        return int(lookup(value)[2])
    except KeyError:
        raise InvalidValue("%s %s does not exist on this master" % (what, value)) from None


def wanted_attributes(
    params: t.Dict[str, t.Any], model: t.Optional[os.stat_result]
) -> t.Tuple[int, int, int]:
    """(mode, uid, gid) for dest: as given, else those of the model file (src; dest itself for content)."""
    if params["mode"]:
        mode = parse_mode(params["mode"])
    else:
        mode = stat.S_IMODE(t.cast(os.stat_result, model).st_mode)  # src is the model: content needs mode
    uid = model.st_uid if model is not None else os.geteuid()
    gid = model.st_gid if model is not None else os.getegid()
    if params["owner"]:
        uid = resolve_id(params["owner"], pwd.getpwnam, "user")
    if params["group"]:
        gid = resolve_id(params["group"], grp.getgrnam, "group")
    return mode, uid, gid


def current_attributes(path: str) -> t.Optional[t.Tuple[int, int, int]]:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.S_IMODE(found.st_mode), found.st_uid, found.st_gid


def wanted_content(module: TkeKmsModule) -> t.Tuple[str, t.Optional[os.stat_result]]:
    """The content to restore and the file whose mode and owner it gets by default."""
    if module.params["content"] is not None:
        try:
            return module.params["content"], os.stat(module.params["dest"])
        except FileNotFoundError:
            return module.params["content"], None
    return read_backup(module, module.params["src"])


def read_backup(module: TkeKmsModule, src: str) -> t.Tuple[str, os.stat_result]:
    try:
        text = read_text(src)
        if text is None:
            module.fail_json(msg="the backup %s does not exist; nothing was restored" % src)
        return t.cast(str, text), os.stat(src)
    except (OSError, UnicodeDecodeError) as exc:
        module.fail_from_exception(exc, "cannot read the backup %s (nothing was restored)" % src)
    raise AssertionError("unreachable")


def main() -> None:
    module = TkeKmsModule(
        argument_spec(),
        supports_check_mode=True,
        required_one_of=[("src", "content")],
        mutually_exclusive=[("src", "content")],
        required_by={"content": "mode"},
    )
    dest = module.params["dest"]
    if not os.path.isdir(os.path.dirname(os.path.abspath(dest))):
        module.fail_json(msg="the directory of %s does not exist; nothing was restored" % dest, dest=dest)
    text, model = wanted_content(module)
    try:
        mode, uid, gid = wanted_attributes(module.params, model)
        before = read_text(dest)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        module.fail_from_exception(exc, "%s (nothing was restored)" % dest, dest=dest)
    attributes_before = current_attributes(dest)
    result: t.Dict[str, t.Any] = dict(
        changed=before != text or attributes_before != (mode, uid, gid),
        dest=dest,
        checksum=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        mode="%04o" % mode,
    )
    if module._diff and result["changed"]:
        source = module.params["src"] or "(content)"
        result["diff"] = dict(before=before or "", after=text, before_header=dest, after_header=source)
    if module.check_mode or not result["changed"]:
        module.exit_json(**result)
    try:
        atomic_write(dest, text, mode, owner=(uid, gid))
    except OSError as exc:
        module.fail_from_exception(exc, "cannot write %s (it was left as it was)" % dest, dest=dest)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
