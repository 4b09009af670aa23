# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fixtures shared by the unit tests. The stand-ins are in ``fakes``, the data in ``oath_data``."""

from __future__ import annotations

import pytest


@pytest.fixture
def patch_api(monkeypatch):
    """``patch_api(module, fake, factory)``: the module (of plugins/modules) gets ``fake`` from its API factory
    (``hardware_oath_api`` or ``policy_api``) and returns it. Without ``fake``, building the API at all fails the test:
    input that must be refused before any request."""

    def patch(module, fake=None, factory="hardware_oath_api"):
        def build(graph_module, **options):
            if fake is None:
                raise AssertionError("no Graph client may be used: the input must be refused before any request")
            return fake

        monkeypatch.setattr(module, factory, build)
        return fake

    return patch
