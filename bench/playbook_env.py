"""The environment of an ``ansible-playbook`` run of the benchmark or the soak: the collection from the scratch
directory, one recording callback, and every temporary directory and Ansible's home in the scratch directory."""

from __future__ import annotations

import os
from pathlib import Path


def playbook_env(work: Path, callbacks: Path, callback: str, record_variable: str, record: Path) -> dict[str, str]:
    """This process's environment for a run whose scratch directory is ``work``: the callback plugin ``callback``
    (from ``callbacks``) records the tasks' results to ``record``, named by the variable ``record_variable``."""
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_COLLECTIONS_PATH": str(work / "collections"),
            "ANSIBLE_CALLBACK_PLUGINS": str(callbacks),
            "ANSIBLE_CALLBACKS_ENABLED": callback,
            record_variable: str(record),
            "ANSIBLE_LOCAL_TEMP": str(work / "tmp" / "local"),
            "ANSIBLE_REMOTE_TMP": str(work / "tmp" / "remote"),
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "false",
        }
    )
    env.setdefault("ANSIBLE_HOME", str(work / "ansible-home"))
    return env
