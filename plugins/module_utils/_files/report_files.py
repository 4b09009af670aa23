# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""Where the report files go, on the controller: checks only, no write (docs/security.md, "The report files").

- The report's name is a plain file name: letters, digits, ``.``, ``_`` and ``-``, starting with a letter or a digit
  (no path separator, no hidden file, no leading ``-`` that a shell command would take for an option), without
  ``..``, not ending with ``.``, at most MAX_NAME characters. ``.json`` and ``.md`` are added.
- The directory, when it exists, is a directory (not a symbolic link) that belongs to the user who checks it, and
  that no group or other user can write to. Readable by others is fine: the files are created 0600, and a listing
  shows only the configured names. It is refused otherwise, and never changed: a directory that others could write to
  may already hold what they put there (a link where a report goes, a file of theirs), and a silent ``chmod`` would
  hide that. A missing directory is for the caller to create (mode 0700), then to check again.

Only the directory itself is checked (``lstat``), not its parents."""

from __future__ import annotations

import os
import re
import stat
import typing as t
from dataclasses import dataclass

from .._common.validation import shown

MAX_NAME = 100
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
EXTENSIONS = {"json": ".json", "markdown": ".md"}
OPEN_BITS = stat.S_IWGRP | stat.S_IWOTH  # who else could change what the directory holds


class ReportFileError(ValueError):
    """A report name or directory the report must not be written with; the message says why and what to do."""


@dataclass(frozen=True)
class ReportFiles:
    """The checked directory (absolute, as it was examined), whether it exists, and the report's files in it."""

    directory: str
    exists: bool
    json: str
    markdown: str

    def as_dict(self) -> dict[str, t.Any]:
        return {"dir": self.directory, "exists": self.exists, "json": self.json, "markdown": self.markdown}


def check_report_name(name: t.Any) -> str:
    """``name`` when it is a plain file name (see the module's description); a ReportFileError otherwise."""
    if not isinstance(name, str):
        raise ReportFileError(f"the report name must be a string, not {type(name).__name__}")
    if not name:
        raise ReportFileError("the report name is empty; give a plain file name, such as hardware-oath-tokens")
    if "/" in name or "\\" in name:
        raise ReportFileError(
            f"the report name {shown(name)} holds a path separator; it is a plain file name (set the directory with "
            "the report directory)"
        )
    if ".." in name:
        raise ReportFileError(f"the report name {shown(name)} holds '..'; it is a plain file name")
    if name.startswith("."):
        raise ReportFileError(f"the report name {shown(name)} starts with '.', which would make hidden files")
    if name.endswith("."):
        raise ReportFileError(f"the report name {shown(name)} ends with '.', which would make {shown(name + '.json')}")
    if not NAME_RE.fullmatch(name):
        raise ReportFileError(
            f"the report name {shown(name)} may hold only the letters A-Z and a-z, digits, '.', '_' and '-', and "
            "must start with a letter or a digit"
        )
    if len(name) > MAX_NAME:
        raise ReportFileError(f"the report name is {len(name)} characters long; at most {MAX_NAME} are allowed")
    return name


def report_directory(path: t.Any) -> str:
    """``path`` as the modules that write the files take it (``~`` and ``$VARS`` expanded), absolute (from the current
    directory), without trailing slashes (which would make ``lstat`` follow a symbolic link)."""
    if not isinstance(path, str):
        raise ReportFileError(f"the report directory must be a string (a path), not {type(path).__name__}")
    expanded = os.path.expandvars(os.path.expanduser(path))
    if not expanded.strip():
        raise ReportFileError("the report directory is empty; give a path, or none for no report")
    if "\0" in expanded:
        raise ReportFileError("the report directory holds a NUL character")
    if not os.path.isabs(expanded):
        expanded = os.path.join(os.getcwd(), expanded)
    return expanded.rstrip("/") or "/"


def check_report_dir(path: t.Any, *, euid: int | None = None) -> tuple[str, bool]:
    """The absolute directory and whether it exists; a ReportFileError when it exists and is not a directory that only
    ``euid`` (default: this process's effective user) can change. Nothing is changed."""
    directory = report_directory(path)
    owner = os.geteuid() if euid is None else euid
    where = f"the report directory {shown(directory, 200)}"
    try:
        found = os.lstat(directory)
    except FileNotFoundError:
        return directory, False
    except OSError as exc:
        raise ReportFileError(f"{where} can't be examined: {exc.strerror or type(exc).__name__}") from None
    if stat.S_ISLNK(found.st_mode):
        raise ReportFileError(
            f"{where} is a symbolic link; give the directory itself (a link can be turned to another place between "
            "the check and the writes); it is left as it is"
        )
    if not stat.S_ISDIR(found.st_mode):
        raise ReportFileError(f"{where} exists and is not a directory; it is left as it is")
    if found.st_uid != owner:
        raise ReportFileError(
            f"{where} belongs to the user with uid {found.st_uid}, not to the user writing the report (uid {owner}); "
            "its owner can change what it holds. Give a directory of your own, or a path that does not exist yet "
            "(it is created with mode 0700); it is left as it is"
        )
    if found.st_mode & OPEN_BITS:
        who = " and ".join(
            name for bit, name in ((stat.S_IWGRP, "its group"), (stat.S_IWOTH, "other users")) if found.st_mode & bit
        )
        raise ReportFileError(
            f"{where} has mode {stat.S_IMODE(found.st_mode):04o}: {who} can write to it, so it may already hold what "
            "they put there (a link where a report goes). It is left as it is: remove their write permission "
            "(chmod go-w) once you know nobody else wrote there, or give another directory"
        )
    return directory, True


def report_files(report_dir: t.Any, report_name: t.Any, *, euid: int | None = None) -> ReportFiles:
    """The report's files, once the name and the directory are checked (the name first: a bad name is refused whatever
    the directory)."""
    name = check_report_name(report_name)
    directory, exists = check_report_dir(report_dir, euid=euid)
    paths = {kind: os.path.join(directory, name + extension) for kind, extension in EXTENSIONS.items()}
    return ReportFiles(directory, exists, paths["json"], paths["markdown"])
