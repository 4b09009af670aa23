# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Makes this checkout importable as ``ansible_collections.tokenops.entra`` (imported for that, before the
collection's modules): a directory ``.tmp/conformance`` of the checkout holding ``ansible_collections/tokenops/entra``,
a link to the checkout, goes first on ``sys.path``. A checkout that already lies at ``.../ansible_collections/tokenops/
entra`` is used where it is."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the collection's root: tests/conformance/ is two levels down
LINK_BASE = ROOT / ".tmp" / "conformance"


def collections_dir() -> Path:
    """The directory to put on ``sys.path`` (it holds ``ansible_collections/tokenops/entra``)."""
    if ROOT.parts[-3:] == ("ansible_collections", "tokenops", "entra"):
        return ROOT.parents[2]
    link = LINK_BASE / "ansible_collections" / "tokenops" / "entra"
    if not (link.is_symlink() and link.resolve() == ROOT):
        link.parent.mkdir(parents=True, exist_ok=True)
        temporary = link.with_name(f".entra.{os.getpid()}")
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(ROOT, target_is_directory=True)
        os.replace(temporary, link)  # atomic: another run may be doing the same
    return LINK_BASE


def ensure() -> None:
    path = str(collections_dir())
    if path not in sys.path:
        sys.path.insert(0, path)


ensure()
