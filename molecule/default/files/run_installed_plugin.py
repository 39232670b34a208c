"""Run the plugin that the systemd mode installed in chroot masters, as its unit would, and ask it for Status.

There is no systemd in the chroot lab, so this does what the unit does: it runs the unit's ExecStart inside
each chroot (with the key id of a key created in a local KMS emulator, and the emulator as KMS endpoint),
then asks every socket for KMS v2 Status and v1beta1 Version with the collection's own stdlib gRPC probe,
and stops everything it started by PID. Prints one JSON line per master; exit 1 if one did not answer.

Usage: run_installed_plugin.py CHROOT [CHROOT...]   (run with the repo venv's python, as root)
"""

from __future__ import annotations

import configparser
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
# The collection under test: the installed copy (installed_collection.sh), else the checkout's.
sys.path.insert(0, os.environ.get("TKE_KMS_COLLECTIONS_PATH") or str(REPO / ".collections"))

from ansible_collections.tke.kms.plugins.module_utils._grpc_probe import (  # noqa: E402
    ProbeError,
    kms_v1_version,
    kms_v2_status,
)
from tencentcloud.kms.v20190118 import models  # noqa: E402
from tke_kms_plugin.emulator.testing import make_kms_client, start_emulator_process  # noqa: E402

UNIT = "etc/systemd/system/tke-kms-plugin.service"
CHROOT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"}
DEADLINE = 30.0


def exec_start(root: Path) -> list[str]:
    for line in (root / UNIT).read_text().splitlines():
        if line.startswith("ExecStart="):
            return shlex.split(line.removeprefix("ExecStart="))
    raise SystemExit(f"{root / UNIT} has no ExecStart")


def flag(argv: list[str], name: str) -> str:
    return next(arg.split("=", 1)[1] for arg in argv if arg.startswith(name + "="))


def credentials(root: Path, argv: list[str]) -> tuple[str, str]:
    parser = configparser.ConfigParser()
    parser.read(root / flag(argv, "--credentials-file").lstrip("/"))
    return parser["default"]["secret_id"], parser["default"]["secret_key"]


def host_path(root: Path, inside: str) -> Path:
    """Where a path inside the chroot is on the host (Debian's /var/run -> /run is an absolute symlink)."""
    current = root
    for part in Path(inside).relative_to("/").parts:
        candidate = current / part
        while candidate.is_symlink():
            target = os.readlink(candidate)
            candidate = root / target.lstrip("/") if target.startswith("/") else candidate.parent / target
        current = candidate
    return current


def wait_healthy(socket: str) -> dict:
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            status = kms_v2_status(socket, timeout=2)
            if status["healthz"] == "ok":
                return {"v2": status, "v1": kms_v1_version(socket, timeout=2)}
        except ProbeError as exc:
            status = {"error": str(exc)}
        if time.monotonic() > deadline:
            return {"unhealthy": status}
        time.sleep(0.2)  # polling the socket, with a deadline


def main() -> int:
    roots = [Path(arg).resolve() for arg in sys.argv[1:]]
    argvs = {root: exec_start(root) for root in roots}
    secret_id, secret_key = credentials(roots[0], argvs[roots[0]])
    region = flag(argvs[roots[0]], "--region")
    emulator = start_emulator_process({secret_id: secret_key})
    plugins: list[subprocess.Popen[bytes]] = []
    failed = False
    try:
        client = make_kms_client(emulator.endpoint, secret_id, secret_key, region=region, timeout=5)
        request = models.CreateKeyRequest()
        request.Alias = "molecule-installed-plugin"
        key_id = client.CreateKey(request).KeyId
        for root, unit_argv in argvs.items():
            replaced = ("--key-id=", "--kms-endpoint=", "--metrics-address=")
            argv = [a for a in unit_argv if not a.startswith(replaced)]
            argv += [f"--key-id={key_id}", f"--kms-endpoint={emulator.url}", "--metrics-address="]
            socket_dir = host_path(root, os.path.dirname(flag(argv, "--unix-socket")))
            socket_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # systemd's RuntimeDirectory
            log = open(root / "tmp/tke-kms-plugin.log", "wb")  # noqa: SIM115 - closed with the process
            plugins.append(
                subprocess.Popen(["chroot", str(root), *argv], stdout=log, stderr=log, env=CHROOT_ENV)
            )
        for root, argv in argvs.items():
            answer = wait_healthy(str(host_path(root, flag(argv, "--unix-socket"))))
            failed = failed or "unhealthy" in answer
            print(json.dumps({"master": root.parent.name, **answer}))
    finally:
        for plugin in plugins:
            plugin.terminate()
        for plugin in plugins:
            try:
                plugin.wait(10)
            except subprocess.TimeoutExpired:
                plugin.kill()
                plugin.wait()
        emulator.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
