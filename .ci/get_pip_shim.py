# Copyright: tokenops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Offline stand-in for ansible-test's get-pip bootstrap script.

ansible-test bootstraps pip in every venv it creates by running
``~/.ansible/test/cache/get_pip_<version>.py`` (downloading it from a host
that is unreachable here when the file is missing).  The Makefile copies this
file to that path, and the wheel of that pip version beside it.  With the wheel,
pip installs itself from it, as the real get-pip does: one pip run per venv.
Without it, pip is bootstrapped from the interpreter's bundled wheel
(ensurepip) and then installs the requested packages (for example
``pip==24.2``) from the configured index.
"""

from __future__ import annotations

import ensurepip
import os
import subprocess
import sys

IGNORED_ARGS = ("--no-setuptools", "--no-wheel")


def main() -> int:
    """Bootstrap pip, then install the packages given on the command line."""
    here = os.path.dirname(os.path.abspath(__file__))
    args = [arg for arg in sys.argv[1:] if arg not in IGNORED_ARGS]
    versions = [arg.split("==", 1)[1] for arg in args if arg.startswith("pip==")]
    wheel = os.path.join(here, f"pip-{versions[0]}-py3-none-any.whl") if versions else ""
    if os.path.isfile(
        wheel
    ):  # a venv without pip or setuptools (ansible-test asks for neither): pip runs from its wheel
        return subprocess.call([sys.executable, os.path.join(wheel, "pip"), "install", "--find-links", here] + args)
    ensurepip.bootstrap(upgrade=False, default_pip=True)
    # ensurepip sets PIP_CONFIG_FILE=/dev/null in os.environ; pip would then
    # lose /etc/pip.conf (and its cert= setting) and fail TLS verification.
    os.environ.pop("PIP_CONFIG_FILE", None)
    rc = subprocess.call([sys.executable, "-m", "pip", "install"] + args)
    if rc == 0 and "--no-setuptools" in sys.argv[1:] and _installed("setuptools"):
        rc = subprocess.call([sys.executable, "-m", "pip", "uninstall", "-q", "-y", "setuptools"])
    return rc


def _installed(name: str) -> bool:
    """Tell whether the venv has the distribution (ensurepip on 3.12+ has no setuptools)."""
    return (
        subprocess.call(
            [sys.executable, "-m", "pip", "show", "-q", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        == 0
    )


if __name__ == "__main__":
    sys.exit(main())
