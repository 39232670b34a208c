#!/usr/bin/env bash
# ansible-test sanity for collection tke.kms, offline and without Docker.
#
# ansible-test needs the collection at .../ansible_collections/tke/kms, so this copies the files git knows about
# (tracked, or new and not ignored) that make up the collection's Ansible content into a temporary tree and runs
# the sanity tests there with the repo venv (--local; the tools are pinned in requirements-dev.txt).
# plugin_server/, tests/ and the lab are plain Python projects linted by ruff, not Ansible content.
# Usage: tests/sanity/run.sh [ansible-test sanity options, e.g. --test validate-modules]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv_bin=${VENV_BIN:-$root/.venv/bin}
content=(galaxy.yml README.md meta plugins tests/config.yml tests/sanity)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dest=$work/ansible_collections/tke/kms
mkdir -p "$dest"

cd "$root"
git ls-files -z --cached --others --exclude-standard -- "${content[@]}" |
  rsync -a --from0 --files-from=- --ignore-missing-args ./ "$dest/"

# ansible-test bootstraps pip into its per-test virtualenvs with a script it downloads from a host outside the
# reachable package indexes; give it an equivalent that uses ensurepip (the venvs are then cached and reused).
pip_version=$("$venv_bin/python" -c 'import types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version="3.11"))["pip"])')
get_pip=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
if [[ ! -f $get_pip ]]; then
  mkdir -p "$(dirname "$get_pip")"
  cp "$root/tests/sanity/get_pip_offline.py" "$get_pip"
fi
cd "$dest"
# The collection is Apache-2.0, so validate-modules' GPLv3 header check fails for every module by design; list
# each module once here instead of in tests/sanity/ignore-2.19.txt, which keeps the real exceptions.
ignore=tests/sanity/ignore-2.19.txt
mkdir -p tests/sanity && touch "$ignore"
for module in plugins/modules/*.py; do
  echo "$module validate-modules:missing-gplv3-license # the collection is Apache-2.0" >>"$ignore"
done
# Code that runs on masters must run on every Python ansible-core 2.19 supports on targets (3.8 and later; ruff
# checks the syntax with plugins/ruff.toml's target-version). The files use postponed annotations, which are
# never evaluated at run time.
"$venv_bin/vermin" -q --no-tips --violations -t=3.8- "$root/plugins"
# ansible-test must not pick up the checkout's own collection link or user configuration.
export ANSIBLE_COLLECTIONS_PATH=$work
unset ANSIBLE_CONFIG
PATH=$venv_bin:$PATH ansible-test sanity --local --python 3.11 --color no "$@"
