#!/usr/bin/python
# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: reencrypt
short_description: Rewrite Secrets (or other objects) so that they are stored with the current write provider
version_added: 0.1.0
description:
  - Stores objects again, unchanged, through the kube-apiserver of this master. The apiserver then encrypts
    each with the first provider of its encryption configuration - after the write phase of a rollout, the
    KMS provider; when disabling, C(identity).
  - Each object gets an empty JSON merge patch, so a change made by someone else meanwhile can never be
    overwritten (the apiserver resolves its own conflicts; a conflict it gives back is retried). Lists and
    answers are asked for as metadata only, so Secret values never reach the module.
  - Without O(secrets), every object of the O(resources) in all namespaces is listed page by page
    (limit/continue) and rewritten by O(workers) threads while later pages are still being listed, each
    thread with its own kept-alive connection. With O(secrets), only those are rewritten
    (M(tke.kms.secret_storage_info) returns the ones not yet stored with KMS, which makes a repeated run a
    no-op).
  - An object deleted meanwhile is reported in RV(missing). An object the apiserver did not need to store
    again (already with the write provider) keeps its resourceVersion and is counted as RV(unchanged), so the
    task reports a change only when something was rewritten.
  - An object the apiserver refuses to store (for example one that no longer passes validation) is reported
    in RV(failures) and the others are still rewritten; the task then fails at the end. The run stops early
    only when the apiserver cannot be reached or refuses a list.
  - Only one page of names is held at a time and at most a few hundred objects wait for a worker, so the
    module's memory stays flat however many objects the cluster has (about 30 MB).
  - When a continue token expires between two pages (etcd was compacted meanwhile), the listing goes on with
    the token the apiserver returns with its HTTP 410 answer, after the last object listed, so none is listed
    twice or left out; objects created meanwhile may then be included too, which only means they are
    rewritten as well. A list page or a rewrite that gets no answer (a timeout, an apiserver restart) or a
    transient error is tried again (O(retries)).
  - Run it only when every apiserver has the wanted provider first, or an object may be rewritten by an
    apiserver that still writes with the old provider.
options:
  resources:
    description:
      - The resources whose objects are rewritten - core resources by their plural name (V(secrets),
        V(configmaps)), others as C(<plural>.<group>) (for example V(widgets.example.com)) in the group's
        preferred version. Namespaced and cluster-scoped resources are both supported.
      - The apiserver must allow C(list) and C(patch) on each; an unknown resource fails the task before
        anything is rewritten.
    type: list
    elements: str
    default: [secrets]
  secrets:
    description:
      - C(namespace/name) of the Secrets to rewrite, instead of listing them all.
      - Only with O(resources=[secrets]).
    type: list
    elements: str
  workers:
    description:
      - Objects rewritten at the same time, each worker over its own kept-alive connection. Under KMS v1
        every rewrite waits for one KMS Encrypt call, so concurrency is what makes a large cluster fast.
    type: int
    default: 16
  page_size:
    description: Objects per list request, without O(secrets).
    type: int
    default: 500
  retries:
    description:
      - How often an object or a list page is tried again, with a growing, jittered delay, when the apiserver
        answers with a conflict (HTTP 409, it kept changing), asks to slow down (429), fails in a way that
        passes (500, 503, 504 - for example the KMS plugin answering that Tencent KMS throttles it), or does
        not answer at all (a timeout, a restart).
    type: int
    default: 5
    aliases: [conflict_retries]
  progress_file:
    description:
      - A file on the master that the module replaces atomically every 2 seconds with the counts so far, as
        JSON with C(state), C(listed), C(total), C(rewritten), C(unchanged), C(missing), C(failures),
        C(per_resource) and C(elapsed_seconds), and once more at the end with C(state) V(done), V(failed) or
        V(stopped). Ansible shows a module's result only when it ends; follow a long run with
        C(watch cat FILE) on the master. Holds counts only, no names or values. Not written in check mode.
    type: path
extends_documentation_fragment:
  - tke.kms.master_api
  - tke.kms.attributes
  - tke.kms.attributes.MUTATING
attributes:
  check_mode:
    details:
      - Counts only - nothing is rewritten. Without O(secrets), every object listed counts as RV(rewritten)
        (whether the apiserver would really store it again is not known in advance); with O(secrets), the
        ones that exist.
  diff_mode:
    support: none
notes:
  - Results are named RV(missing) and RV(failures) because Ansible reserves C(skipped) and C(failed) in task
    results.
seealso:
  - module: tke.kms.secret_storage_info
author:
  - tke.kms maintainers (@tke-kms)
"""

EXAMPLES = r"""
- name: Find the Secrets still stored without KMS
  tke.kms.secret_storage_info:
  register: storage

- name: Rewrite them with KMS
  tke.kms.reencrypt:
    secrets: "{{ storage.pending }}"
  when: storage.pending_count > 0

- name: Rewrite every Secret and ConfigMap and every Widget, 32 at a time, with progress for `watch cat`
  tke.kms.reencrypt:
    resources: [secrets, configmaps, widgets.example.com]
    workers: 32
    progress_file: /var/tmp/tke-kms-reencrypt.json
"""

RETURN = r"""
rewritten:
  description: Objects stored again with the write provider (would be, in check mode).
  returned: always
  type: int
  sample: 1998
unchanged:
  description: Objects the apiserver did not need to store again (already with the write provider).
  returned: always
  type: int
  sample: 0
missing:
  description:
    - Objects deleted before they could be rewritten, as C(namespace/name) (C(name) when cluster-scoped),
      prefixed with C(<resource>/) when several O(resources) are given.
    - At most the first 1000; RV(per_resource) counts them all.
  returned: always
  type: list
  elements: str
  sample: [default/deleted-meanwhile]
failures:
  description:
    - Objects the apiserver refused to store, named as in RV(missing), with its answer.
    - At most the first 1000; RV(per_resource) counts them all.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The object.
      type: str
    error:
      description: The request and the apiserver's answer.
      type: str
  sample:
    - name: default/old
      error: "PATCH https://10.0.0.1:6443/api/v1/namespaces/default/secrets/old: HTTP 422 ..."
total:
  description: Objects handled - the sum of RV(rewritten), RV(unchanged), and the missing and failed ones.
  returned: always
  type: int
  sample: 2000
per_resource:
  description: The counts per resource.
  returned: always
  type: dict
  sample: {"secrets": {"rewritten": 1998, "unchanged": 0, "missing": 2, "failures": 0, "total": 2000}}
elapsed_seconds:
  description: How long the listing and rewriting took.
  returned: always
  type: float
  sample: 7.4
"""

import itertools
import typing as t

from ansible_collections.tke.kms.plugins.module_utils._errors import TkeKmsError
from ansible_collections.tke.kms.plugins.module_utils._master_api import (
    master_endpoint,
    master_module,
    read_manifest,
)
from ansible_collections.tke.kms.plugins.module_utils._module import (
    TkeKmsModule,
    error_result,
)
from ansible_collections.tke.kms.plugins.module_utils._rewrite import (
    Item,
    ProgressFile,
    ProgressFileError,
    RewriteError,
    Tally,
    discover,
    list_items,
    run,
)

FAILURES_IN_MESSAGE = 3


def split_names(module: TkeKmsModule, names: t.List[str]) -> t.List[t.Tuple[str, str]]:
    pairs = []
    for entry in names:
        namespace, _sep, name = entry.partition("/")
        if not namespace or not name or "/" in name:
            module.fail_json(msg="secrets must be given as namespace/name, got %r" % entry)
        pairs.append((namespace, name))
    return pairs


def check_params(module: TkeKmsModule) -> t.List[str]:
    """The resources to rewrite, once each, after the checks Ansible's argument spec cannot make."""
    params = module.params
    for option, least in (("workers", 1), ("page_size", 1), ("retries", 0)):
        if params[option] < least:
            module.fail_json(msg="%s must be at least %d, got %d" % (option, least, params[option]))
    resources = list(dict.fromkeys(params["resources"]))
    if not resources:
        module.fail_json(msg="resources must name at least one resource, e.g. [secrets]")
    if params["secrets"] is not None and resources != ["secrets"]:
        module.fail_json(
            msg="secrets (names of Secrets) can only be given with resources=[secrets], got resources=%s"
            % resources
        )
    return resources


def result_of(tally: Tally) -> t.Dict[str, t.Any]:
    counts = tally.counts()
    return dict(
        changed=counts["rewritten"] > 0,
        rewritten=counts["rewritten"],
        unchanged=counts["unchanged"],
        missing=tally.missing,
        failures=tally.failures,
        total=counts["total"],
        per_resource=counts["per_resource"],
        elapsed_seconds=counts["elapsed_seconds"],
    )


def counted(result: t.Dict[str, t.Any], outcome: str) -> int:
    return sum(counts[outcome] for counts in result["per_resource"].values())


def main() -> None:
    module = master_module(
        dict(
            resources=dict(type="list", elements="str", default=["secrets"]),
            secrets=dict(type="list", elements="str", no_log=False),
            workers=dict(type="int", default=16),
            page_size=dict(type="int", default=500),
            retries=dict(type="int", default=5, aliases=["conflict_retries"]),
            progress_file=dict(type="path"),
        ),
    )
    params = module.params
    resource_names = check_params(module)
    names = split_names(module, params["secrets"]) if params["secrets"] is not None else None
    try:
        endpoint = master_endpoint(params, read_manifest(params["manifest_path"]))
    except (TkeKmsError, OSError, ValueError) as exc:
        module.fail_from_exception(exc)
    with endpoint:
        try:
            resources = [discover(endpoint, name) for name in resource_names]
        except TkeKmsError as exc:
            module.fail_from_exception(exc)
        progress = (
            ProgressFile(params["progress_file"])
            if params["progress_file"] and not module.check_mode
            else None
        )
        tally = Tally(resources, progress)
        if progress is not None:
            try:
                progress.write(tally.counts(state="running"))
            except ProgressFileError as exc:
                module.fail_from_exception(exc)
        if names is not None:
            items: t.Iterable[Item] = [Item(resources[0], ns, name, None) for ns, name in names]
        else:
            items = itertools.chain.from_iterable(
                list_items(endpoint, resource, params["page_size"], params["retries"])
                for resource in resources
            )
        stopped: t.Optional[RewriteError] = None
        try:
            run(
                endpoint,
                items,
                tally,
                workers=params["workers"],
                retries=params["retries"],
                check_mode=module.check_mode,
            )
        except RewriteError as exc:
            stopped = exc
    result = result_of(tally)
    failed = counted(result, "failures")  # all of them: the list names only the first ones
    state = "stopped" if stopped else "failed" if failed else "done"
    if progress is not None:
        try:
            progress.write(tally.counts(state=state))
        except ProgressFileError as exc:
            module.warn(str(exc))
    if stopped:
        module.fail_json(
            msg="re-encryption stopped after %d objects: %s" % (result["total"], stopped),
            error=error_result(stopped),
            **result,
        )
    if failed:
        first = "; ".join("%(name)s (%(error)s)" % f for f in tally.failures[:FAILURES_IN_MESSAGE])
        module.fail_json(
            msg="%d of %d objects could not be rewritten (the others were): %s%s"
            % (
                failed,
                result["total"],
                first,
                "; ..." if failed > FAILURES_IN_MESSAGE else "",
            ),
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
