# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The guides stay one Markdown file each, read on the repository: every one is a page of the docsite
(docs/docsite/extra-docs.yml, rendered to docs/docsite/rst/ by `make docsite`) or one of its links
(docs/docsite/links.yml), and every link to the repository's main branch (in the docsite, the plugins' and the role's
documentation) and every relative link between the Markdown files names a file that exists and, with an anchor, one of
its headings. That the rendered pages are those of their Markdown, and render, is make release-check's
(.ci/docsite.py)."""

from __future__ import annotations

import pathlib
import re

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
REPOSITORY = "https://github.com/tokenops/entra/"
REPOSITORY_LINK = re.compile(re.escape(REPOSITORY) + r"(?:blob|tree)/main/([^\s\"'<>)`#]+)(?:#([\w-]+))?")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
DOCSITE = ROOT / "docs" / "docsite"


def markdown_files() -> list[pathlib.Path]:
    """The Markdown the collection and its repository show: the top level, docs/ and the role's README."""
    return sorted([*ROOT.glob("*.md"), *(ROOT / "docs").rglob("*.md"), *(ROOT / "roles").rglob("*.md")])


def guides() -> list[str]:
    """Each guide, by its path in the repository: docs/*.md, the examples' READMEs, CONTRIBUTING and SECURITY."""
    paths = [*(ROOT / "docs").glob("*.md"), *(ROOT / "docs" / "examples").glob("*/README.md")]
    paths += [ROOT / "CONTRIBUTING.md", ROOT / "SECURITY.md"]
    return sorted(path.relative_to(ROOT).as_posix() for path in paths)


def anchors(markdown: pathlib.Path) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    in_code = False
    for line in markdown.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def check_target(target: pathlib.Path, anchor: str | None, where: str) -> None:
    assert target.exists(), f"{where}: {target.relative_to(ROOT)} does not exist"
    if anchor:
        assert target.suffix == ".md", f"{where}: an anchor into {target.relative_to(ROOT)}, which is not Markdown"
        assert anchor in anchors(target), f"{where}: {target.relative_to(ROOT)} has no heading #{anchor}"


@pytest.mark.parametrize("guide", guides())
def test_every_guide_is_a_page_or_a_link_of_the_docsite(guide):
    extra_docs = yaml.safe_load((DOCSITE / "extra-docs.yml").read_text(encoding="utf-8"))
    pages = {f"docs/{name}.md" for section in extra_docs["sections"] for name in section["toctree"]}
    links = yaml.safe_load((DOCSITE / "links.yml").read_text(encoding="utf-8"))["extra_links"]
    linked = {link["url"] for link in links}
    if guide in pages:
        page = DOCSITE / "rst" / f"{pathlib.Path(guide).stem}.rst"
        assert page.is_file(), f"{guide} is in extra-docs.yml, but {page.relative_to(ROOT)} is missing: make docsite"
    else:
        assert f"{REPOSITORY}blob/main/{guide}" in linked, f"{guide}: neither in extra-docs.yml nor in links.yml"


def test_links_to_the_repository_name_what_exists():
    sources = [*(ROOT / "docs" / "docsite").rglob("*.*"), *(ROOT / "plugins").rglob("*.py")]
    sources += [*(ROOT / "roles").rglob("*.yml"), *markdown_files()]
    checked = 0
    for source in sources:
        for match in REPOSITORY_LINK.finditer(source.read_text(encoding="utf-8")):
            check_target(ROOT / match.group(1), match.group(2), str(source.relative_to(ROOT)))
            checked += 1
    assert checked > len(guides())


@pytest.mark.parametrize("markdown", markdown_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_of_markdown_name_what_exists(markdown):
    text = re.sub(r"```.*?```", "", markdown.read_text(encoding="utf-8"), flags=re.DOTALL)
    for link in MARKDOWN_LINK.findall(text):
        if re.match(r"[a-z]+:", link):
            continue
        path, anchor = link.split("#", 1) if "#" in link else (link, "")
        target = (markdown.parent / path).resolve() if path else markdown
        check_target(target, anchor or None, str(markdown.relative_to(ROOT)))
