"""Kubernetes KMS plugin for Tencent Cloud KMS."""

from importlib.metadata import version
from pkgutil import extend_path

# tke_kms_plugin.emulator comes from the separate tke-kms-emulator distribution (plugin_server/emulator),
# which may sit on another sys.path entry (an editable install): let this package find it there too.
__path__ = extend_path(__path__, __name__)

# One source of truth: the version in plugin_server/pyproject.toml, as installed.
__version__ = version("tke-kms-plugin")
