"""The scratch directory of the benchmark or the soak, and the environment of their ``ansible-playbook`` runs: the
collection from the scratch directory, one recording callback, and every temporary directory and Ansible's home in
the scratch directory."""

from __future__ import annotations

import os
from pathlib import Path


def prepare_scratch(work: Path, root: Path, subdirs: tuple[str, ...]) -> None:
    """``work`` with ``subdirs`` (``vars`` private: the variables hold the app's secret and the tokens' secrets) and
    the collection at ``root`` linked where ``playbook_env`` points Ansible."""
    for sub in subdirs:
        (work / sub).mkdir(parents=True, exist_ok=True)
    if "vars" in subdirs:
        os.chmod(work / "vars", 0o700)
    collections = work / "collections" / "ansible_collections" / "tokenops"
    collections.mkdir(parents=True, exist_ok=True)
    link = collections / "entra"
    if not link.is_symlink():
        link.symlink_to(root)


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
