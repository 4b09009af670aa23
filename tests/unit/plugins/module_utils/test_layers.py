# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The layers of plugins/module_utils (docs/architecture.md): each imports only the layers below it, so the imports
run one way, with no circle."""

from __future__ import annotations

import ast
import pathlib

import pytest

PLUGINS = pathlib.Path(__file__).resolve().parents[4] / "plugins"
MODULE_UTILS = PLUGINS / "module_utils"
PACKAGE = "ansible_collections.tokenops.entra.plugins"

# What each layer may import, besides the standard library and its own files (docs/architecture.md).
MAY_IMPORT = {
    "_common": set(),
    "_graph": {"_common"},
    "_domain": {"_common"},
    "_planning": {"_common", "_domain"},
    "_execution": {"_common", "_graph", "_domain", "_planning"},
    "_module": {"_common", "_graph", "_domain", "_planning", "_execution"},
    "_files": {"_common", "_domain"},
}
# The plugins above module_utils: the modules run on the managed node, the filters and the action plugin on the
# controller (the action plugin reads what a module writes as it runs: _common/progress.py).
PLUGIN_MAY_IMPORT = {
    "modules": {"_common", "_domain", "_planning", "_execution", "_module"},
    "filter": {"_files", "plugin_utils"},
    "action": {"_common"},
}


def imported_layers(path: pathlib.Path, plugins: pathlib.Path = PLUGINS) -> set[str]:
    """The collection's plugin packages a file imports: ``_graph``, ``_domain``, ... or ``plugin_utils``."""
    layers = set()
    parts = path.relative_to(plugins).with_suffix("").parts  # ("module_utils", "_graph", "client")
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:  # relative: resolved against the file's package
            base = list(parts[: len(parts) - node.level])
            target = [*base, *(node.module.split(".") if node.module else [])]
        elif node.module and node.module.startswith(PACKAGE + "."):
            target = node.module[len(PACKAGE) + 1 :].split(".")
        else:
            continue
        if target[0] == "module_utils" and len(target) > 1:
            layers.add(target[1])
        elif target[0] == "plugin_utils":
            layers.add("plugin_utils")
    return layers


def test_module_utils_holds_only_the_layers():
    assert sorted(p.name for p in MODULE_UTILS.iterdir() if p.name != "__pycache__") == sorted(MAY_IMPORT)
    for layer in MAY_IMPORT:
        assert (MODULE_UTILS / layer / "__init__.py").read_text() == ""  # Ansible needs it beneath module_utils


@pytest.mark.parametrize("layer", sorted(MAY_IMPORT))
def test_each_layer_imports_only_the_layers_below_it(layer):
    for path in sorted((MODULE_UTILS / layer).glob("*.py")):
        assert imported_layers(path) - {layer} <= MAY_IMPORT[layer], path.name


@pytest.mark.parametrize("kind", sorted(PLUGIN_MAY_IMPORT))
def test_modules_and_filters_import_only_their_side(kind):
    for path in sorted((PLUGINS / kind).glob("*.py")):
        assert imported_layers(path) <= PLUGIN_MAY_IMPORT[kind], path.name


def test_the_layers_form_no_circle():
    done: set[str] = set()

    def visit(layer: str, path: tuple[str, ...]) -> None:
        assert layer not in path, " -> ".join((*path, layer))
        if layer not in done:
            for lower in MAY_IMPORT[layer]:
                visit(lower, (*path, layer))
            done.add(layer)

    for layer in MAY_IMPORT:
        visit(layer, ())


def test_the_reader_sees_relative_and_absolute_imports_of_other_layers(tmp_path):
    """The check is not blind: what the rules forbid would be seen."""
    probe = tmp_path / "plugins" / "module_utils" / "_domain" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(
        "import json\n"
        "from .._graph.client import GraphClient\n"
        "from .tokens import TokenView\n"
        f"from {PACKAGE}.module_utils._planning.token import TokenSpec\n"
    )
    assert imported_layers(probe, tmp_path / "plugins") == {"_graph", "_domain", "_planning"}
