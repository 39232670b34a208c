"""Stand-in for get-pip.py, the pip bootstrap that ansible-test downloads from a host not reachable here.

ansible-test runs it inside each fresh sanity virtualenv (created --without-pip) with pip install arguments
such as `pip==24.2 --disable-pip-version-check --no-setuptools --no-wheel`. It installs the interpreter's
bundled pip (ensurepip, offline), then lets that pip install the requested version from the package index.
"""

import subprocess
import sys

GET_PIP_ONLY_OPTIONS = ("--no-setuptools", "--no-wheel")

# In a child process: ensurepip sets PIP_CONFIG_FILE=/dev/null in its own environment, which would hide the
# machine's pip configuration (index, CA bundle) from the install below.
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
arguments = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_OPTIONS]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *arguments]))
