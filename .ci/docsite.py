"""The docsite's guides: docs/docsite/rst/<name>.rst rendered by pandoc from the Markdown guide docs/<name>.md.

    python .ci/docsite.py write         # make docsite: after editing a guide, render the RST again
    python .ci/docsite.py check         # make release-check: fails when an RST file is not what its guide renders to
    python .ci/docsite.py build --dest DIR
                                        # make release-check: the docsite of the collection installed in
                                        # ANSIBLE_COLLECTIONS_PATH (the artifact), rendered to HTML by antsibull-docs
                                        # and Sphinx as docs.ansible.com renders it; fails on any warning of its pages

The Markdown guides are the one source: read on the repository and in the installed collection. antsibull-docs, which
renders a collection's docsite (and Galaxy's pages), takes RST only (ansible-community/antsibull-docs#342), so each
guide the docsite index lists (docs/docsite/extra-docs.yml) is rendered to RST here and committed, so that any
`ansible-galaxy collection build` ships it. Nobody edits the RST: `check` tells when it is stale.

For the docsite, the Markdown's links are rewritten on pandoc's document tree:
- a link to a guide the docsite renders, or to a heading of one (`inventory.md#the-report`, `#seed-files`), becomes a
  `:ref:` to the label given to that guide's title or heading (`ansible_collections.tokenops.entra.docsite.<name>` and
  `...<name>.<GitHub's anchor of the heading>`), so it stays within the docsite;
- a link to any other file of the repository (the examples, the simulator's guide, SECURITY.md), and the one figure,
  become links to it on the repository (galaxy.yml's `repository`, branch main): the artifact does not ship them.

pandoc comes from pypandoc-binary, antsibull-docs, Sphinx and the Ansible theme from tests/requirements-galaxy.txt
(pinned: another pandoc may wrap lines differently). No network: the build reads no other project's inventory, so its
links to Ansible's own docs (a `:ref:` to `common_return_values`) stay unresolved, and only those are not warnings.
"""

from __future__ import annotations

import argparse
import difflib
import json
import posixpath
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pypandoc
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCSITE = ROOT / "docs" / "docsite"
COLLECTION = "tokenops.entra"
LABEL_PREFIX = "ansible_collections.tokenops.entra.docsite."
OTHER_PROJECTS_LABEL = re.compile(r"undefined label: '(?!ansible_collections\.tokenops\.entra\.)[^']*'")
HEADER = """..
  Copyright (c) tokenops.entra contributors
  GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
  SPDX-License-Identifier: GPL-3.0-or-later

..
  Rendered from docs/{name}.md by `make docsite` (.ci/docsite.py): edit the Markdown, not this file.

"""


def guide_names() -> list[str]:
    """The guides of the docsite index, in its order: every toctree entry of docs/docsite/extra-docs.yml."""
    extra_docs = yaml.safe_load((DOCSITE / "extra-docs.yml").read_text(encoding="utf-8"))
    return [name for section in extra_docs["sections"] for name in section["toctree"]]


def repository_url() -> str:
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text(encoding="utf-8"))
    return str(galaxy["repository"]).rstrip("/")


def stringify(inlines: list[dict[str, Any]]) -> str:
    """The plain text of pandoc inlines (a :ref:'s text can hold no markup)."""
    text: list[str] = []
    for inline in inlines:
        kind, content = inline["t"], inline.get("c", [])
        if kind == "Str":
            text.append(content)
        elif kind in ("Space", "SoftBreak", "LineBreak"):
            text.append(" ")
        elif kind in ("Code", "Math", "RawInline"):
            text.append(content[-1])
        elif kind in ("Link", "Image", "Span", "Quoted", "Cite"):
            text.append(stringify(content[-2] if kind in ("Link", "Image") else content[-1]))
        elif isinstance(content, list) and content and isinstance(content[0], dict):
            text.append(stringify(content))
    return "".join(text)


class Renderer:
    def __init__(self, names: list[str]) -> None:
        self.pages = {f"docs/{name}.md": name for name in names}  # a guide's path in the repository: its page
        self.repository = repository_url()

    def render(self, name: str) -> str:
        markdown = (ROOT / "docs" / f"{name}.md").read_text(encoding="utf-8")
        tree = json.loads(pypandoc.convert_text(markdown, "json", format="gfm"))
        tree["blocks"] = [self._rewrite(block, name) for block in tree["blocks"]]
        rst = pypandoc.convert_text(json.dumps(tree), "rst", format="json", extra_args=["--columns=120"])
        return HEADER.format(name=name) + rst

    def _rewrite(self, node: Any, guide: str) -> Any:
        if isinstance(node, list):
            return [self._rewrite(item, guide) for item in node]
        if not isinstance(node, dict) or "t" not in node:
            return node
        kind = node["t"]
        if kind == "Header":
            level, (anchor, classes, attributes), inlines = node["c"]
            label = LABEL_PREFIX + guide + ("" if level == 1 else "." + anchor)
            return {"t": kind, "c": [level, [label, classes, attributes], self._rewrite(inlines, guide)]}
        if kind in ("Link", "Image"):
            return self._link(node, guide)
        if "c" in node:
            return {"t": kind, "c": self._rewrite(node["c"], guide)}
        return node

    def _link(self, node: dict[str, Any], guide: str) -> dict[str, Any]:
        attributes, inlines, (target, title) = node["c"]
        if ":" in target.split("/", 1)[0]:  # https:, mailto:
            return {"t": node["t"], "c": [attributes, self._rewrite(inlines, guide), [target, title]]}
        path, _hash, anchor = target.partition("#")
        in_repository = posixpath.normpath(posixpath.join("docs", path)) if path else f"docs/{guide}.md"
        if in_repository in self.pages:
            label = LABEL_PREFIX + self.pages[in_repository] + ("." + anchor if anchor else "")
            text = stringify(inlines)
            if text == path:  # a file name as the text (`see security.md`): Sphinx shows the title it links to
                return {"t": "RawInline", "c": ["rst", f":ref:`{label}`"]}
            text = text.replace("\\", "\\\\").replace("`", "\\`").replace("<", "\\<")
            return {"t": "RawInline", "c": ["rst", f":ref:`{text} <{label}>`"]}
        kind = "tree" if path.endswith("/") else "blob"
        url = f"{self.repository}/{kind}/main/{in_repository}" + (f"#{anchor}" if anchor else "")
        if node["t"] == "Image":  # a figure of the repository: linked, as the docsite cannot ship it
            return {"t": "Link", "c": [attributes, [{"t": "Str", "c": stringify(inlines) + " (figure)"}], [url, title]]}
        return {"t": "Link", "c": [attributes, self._rewrite(inlines, guide), [url, title]]}


def build(dest: Path) -> int:
    """The docsite of the installed collection, rendered to HTML: every warning of Sphinx is a problem, except a
    label of another project's docs (offline), and every guide of extra-docs.yml must be a page of it."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    init = ["antsibull-docs", "sphinx-init", "--use-current", "--fail-on-error", "--dest-dir", str(dest), COLLECTION]
    subprocess.run(init, check=True, stdout=subprocess.DEVNULL)
    with open(dest / "conf.py", "a", encoding="utf-8") as conf:
        conf.write("\n# Offline: no inventory of another project's docs.\nintersphinx_mapping = {}\n")
    rst = dest / "rst"
    rst.mkdir(exist_ok=True)
    rst.chmod(0o755)  # antsibull-docs refuses a directory others may write to
    collection = ["antsibull-docs", "--config-file", str(dest / "antsibull-docs.cfg"), "collection", "--use-current"]
    subprocess.run([*collection, "--fail-on-error", "--dest-dir", str(rst), COLLECTION], check=True)
    warnings_file = dest / "warnings.txt"
    sphinx = [
        "sphinx-build",
        "-M",
        "html",
        str(rst),
        str(dest / "build"),
        "-c",
        str(dest),
        "-q",
        "-w",
        str(warnings_file),
    ]
    result = subprocess.run(sphinx, capture_output=True, text=True, check=False)  # its warnings: in the file
    if result.returncode:
        print(result.stdout + result.stderr, file=sys.stderr)
        return 1
    warnings = warnings_file.read_text(encoding="utf-8").splitlines()
    problems = [line for line in dict.fromkeys(warnings) if line.strip() and not OTHER_PROJECTS_LABEL.search(line)]
    pages = dest / "build" / "html" / "collections" / "tokenops" / "entra"
    for name in guide_names():
        if not (pages / "docsite" / f"{name}.html").is_file():
            problems.append(f"the guide {name} (docs/docsite/extra-docs.yml) is not a page of the docsite")
        elif f'href="docsite/{name}.html"' not in (pages / "index.html").read_text(encoding="utf-8"):
            problems.append(f"the docsite's index does not link to the guide {name}")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        print(f"ERROR: the docsite does not render cleanly (the pages are in {pages})", file=sys.stderr)
        return 1
    print(f"docsite: {len(guide_names())} guides and every plugin page rendered, in {pages}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("action", choices=("write", "check", "build"))
    parser.add_argument("--dest", type=Path, help="build: the directory to build the docsite in (emptied first)")
    arguments = parser.parse_args()
    action = arguments.action
    if action == "build":
        return build(arguments.dest.resolve())
    names = guide_names()
    renderer = Renderer(names)
    (DOCSITE / "rst").mkdir(exist_ok=True)
    wanted = {DOCSITE / "rst" / f"{name}.rst": renderer.render(name) for name in names}
    problems = []
    for stale in sorted(set((DOCSITE / "rst").glob("*.rst")) - set(wanted)):
        problems.append(f"{stale.relative_to(ROOT)} renders no guide of docs/docsite/extra-docs.yml")
        if action == "write":
            stale.unlink()
    for path, rst in wanted.items():
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current == rst:
            continue
        if action == "write":
            path.write_text(rst, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
            continue
        diff = difflib.unified_diff(
            current.splitlines(), rst.splitlines(), str(path.relative_to(ROOT)), "rendered", n=1, lineterm=""
        )
        problems.append("\n".join([f"{path.relative_to(ROOT)} is not what docs/{path.stem}.md renders to:", *diff]))
    if action == "check" and problems:
        print("\n".join(problems), file=sys.stderr)
        print("ERROR: run `make docsite` and commit docs/docsite/rst/", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
