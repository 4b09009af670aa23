"""The collection's execution environment metadata, checked the way ansible-builder uses it (make ee-check).

    python .ci/ee_check.py --ansible-builder PATH --ansible-galaxy PATH --work-dir DIR

Run with the interpreter of the venv the tests run with (the 2.19 one): its installed packages tell which
distribution provides each import and what each one requires. No container engine and no network:

1. builds the collection's artifact from this checkout (ansible-galaxy collection build) beside a copy of the AWX
   example's docs/examples/awx/execution-environment.yml, which must name that artifact;
2. ansible-builder create: that EE's build context;
3. installs the collections of the context's requirements.yml as the image's galaxy stage does (ansible-galaxy
   collection install -r requirements.yml, from the context, offline);
4. ansible-builder introspect on them, as the image's builder stage does: the Python requirements the image gets;
5. checks them against the code: every package that plugins/ and roles/ import, other than the standard library and
   Ansible, must be among them or be required by one of them (cryptography comes with msal), and each must be
   satisfied by the version the tests run with. The EE definition must not list one of them itself: they come from
   the collection's metadata.

Exits 1 naming each problem.
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_EE = ROOT / "docs" / "examples" / "awx" / "execution-environment.yml"
NAMESPACE, NAME = "tokenops", "entra"
# Imports that are not third-party packages: Ansible itself (ansible-core is the EE's own) and the collections.
NOT_PACKAGES = {"ansible", "ansible_collections"}


class CheckError(Exception):
    pass


def run(argv: list[str], cwd: Path | None = None) -> None:
    started = time.monotonic()
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    print(f"    {Path(argv[0]).name} {' '.join(argv[1:3])} ... ({time.monotonic() - started:.1f} s)")
    if result.returncode != 0:
        raise CheckError(f"{' '.join(argv)} failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")


def imported_packages(collection: Path) -> dict[str, set[str]]:
    """Top-level names of the modules the collection's Python code imports (import statements, and the literal
    names given to importlib.import_module), other than the standard library's and Ansible's, with the files."""
    found: dict[str, set[str]] = {}
    for directory in ("plugins", "roles"):
        for path in sorted((collection / directory).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                elif (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "import_module"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                ):
                    names = [node.args[0].value]
                for name in names:
                    top = name.split(".", 1)[0]
                    if top not in sys.stdlib_module_names and top not in NOT_PACKAGES:
                        found.setdefault(top, set()).add(str(path.relative_to(collection)))
    return found


def requirements_of(distribution: str) -> list[Requirement]:
    """What an installed distribution requires (its extras' requirements left out)."""
    required = []
    for line in importlib.metadata.requires(distribution) or []:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            required.append(requirement)
    return required


def brought_by(declared: list[str]) -> dict[str, list[str]]:
    """Every distribution the declared ones bring, directly or through others: name -> the declared ones that do."""
    brought: dict[str, list[str]] = {}
    for top in declared:
        seen: set[str] = {top}
        queue: list[str] = [top]
        while queue:
            try:
                required = requirements_of(queue.pop())
            except importlib.metadata.PackageNotFoundError:
                continue  # reported by check_versions
            for requirement in required:
                name: str = canonicalize_name(requirement.name)
                if name not in seen:
                    seen.add(name)
                    queue.append(name)
        for name in seen:
            brought.setdefault(name, []).append(top)
    return brought


def check_versions(declared: list[Requirement]) -> list[str]:
    problems = []
    for requirement in declared:
        try:
            installed = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{requirement}: not installed where the tests run (add a pin to tests/requirements.txt)")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            problems.append(f"{requirement}: the tests run with {requirement.name} {installed}, outside that range")
    return problems


def build_context(args: argparse.Namespace, work: Path) -> tuple[Path, dict[str, Any]]:
    """Steps 1 and 2: the artifact beside a copy of the example EE, and ansible-builder create. Returns the
    context's _build directory and the EE definition."""
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text(encoding="utf-8"))
    artifact = f"{galaxy['namespace']}-{galaxy['name']}-{galaxy['version']}.tar.gz"
    definition = yaml.safe_load(EXAMPLE_EE.read_text(encoding="utf-8"))
    sources = [entry.get("src") for entry in definition.get("additional_build_files", [])]
    if artifact not in sources:
        raise CheckError(
            f"{EXAMPLE_EE.relative_to(ROOT)} does not build with this checkout's artifact {artifact} (galaxy.yml "
            f"version {galaxy['version']}); its additional_build_files name {sources}: change the version in both "
            "of its lines"
        )
    ee_dir = work / "awx"
    ee_dir.mkdir(parents=True)
    shutil.copy(EXAMPLE_EE, ee_dir / EXAMPLE_EE.name)
    print(f"==> ee-check: the collection's artifact {artifact}")
    run([args.ansible_galaxy, "collection", "build", "--output-path", str(ee_dir), str(ROOT)])
    print(f"==> ee-check: ansible-builder create -f {EXAMPLE_EE.relative_to(ROOT)}")
    context = work / "context"
    ee_file = str(ee_dir / EXAMPLE_EE.name)
    run(
        [
            args.ansible_builder,
            "create",
            "--file",
            ee_file,
            "--context",
            str(context),
            "--output-filename",
            "Containerfile",
        ]
    )
    build = context / "_build"
    if not (context / "Containerfile").is_file() or not (build / "requirements.yml").is_file():
        raise CheckError(f"ansible-builder create wrote no Containerfile or _build/requirements.yml in {context}")
    return build, definition


def install_and_introspect(args: argparse.Namespace, build: Path, work: Path) -> tuple[Path, list[Requirement]]:
    """Steps 3 and 4: the context's collections installed as the galaxy stage does, then introspected as the builder
    stage does. Returns the installed collection and the Python requirements the image gets."""
    collections = work / "collections"
    requirements = yaml.safe_load((build / "requirements.yml").read_text(encoding="utf-8"))
    for entry in requirements.get("collections", []):
        if entry.get("type") == "file" and not (build / entry["name"]).is_file():
            raise CheckError(
                f"the build context lacks {entry['name']}, which its requirements.yml installs: "
                "additional_build_files does not bring it"
            )
    print("==> ee-check: ansible-galaxy collection install -r requirements.yml (the image's galaxy stage)")
    install = ["collection", "install", "--offline", "-r", "requirements.yml", "-p", str(collections)]
    run([args.ansible_galaxy, *install], cwd=build)
    installed = collections / "ansible_collections" / NAMESPACE / NAME
    if not installed.is_dir():
        raise CheckError(f"the EE would not hold {NAMESPACE}.{NAME}: its requirements.yml does not install it")
    if not (installed / "meta" / "execution-environment.yml").is_file():
        raise CheckError(
            "the installed collection has no meta/execution-environment.yml (missing, or in galaxy.yml's "
            "build_ignore): ansible-builder would guess its requirements from the root's files"
        )
    print("==> ee-check: ansible-builder introspect (the image's builder stage)")
    pip_file = work / "introspect-requirements.txt"
    run([args.ansible_builder, "introspect", "--sanitize", "--write-pip", str(pip_file), str(collections)])
    declared = []
    lines = pip_file.read_text(encoding="utf-8").splitlines() if pip_file.exists() else []
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if text:
            try:
                declared.append(Requirement(text))
            except InvalidRequirement as exc:
                raise CheckError(f"introspect listed a line pip can't read: {line!r} ({exc})") from None
    return installed, declared


def own_python_requirements(definition: dict[str, Any]) -> list[str]:
    """The Python requirements the EE definition lists itself: a list, or a file beside it."""
    own = definition.get("dependencies", {}).get("python") or []
    if isinstance(own, str):
        own = (EXAMPLE_EE.parent / own).read_text(encoding="utf-8").splitlines()
    lines = [line.split("#", 1)[0].strip() for line in own]
    return [line for line in lines if line and not line.startswith("-")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ansible-builder", required=True, type=lambda path: str(Path(path).absolute()))
    parser.add_argument("--ansible-galaxy", required=True, type=lambda path: str(Path(path).absolute()))
    parser.add_argument("--work-dir", required=True, type=Path)
    args = parser.parse_args()
    started = time.monotonic()
    for tool in (args.ansible_builder, args.ansible_galaxy):
        if not os.access(tool, os.X_OK):
            print(
                f"ERROR: ee-check: {tool} is missing (ansible-builder is pinned in tests/requirements-lint.txt)",
                file=sys.stderr,
            )
            return 1
    work: Path = args.work_dir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        build, definition = build_context(args, work)
        installed, declared = install_and_introspect(args, build, work)
    except CheckError as exc:
        print(f"ERROR: ee-check: {exc}", file=sys.stderr)
        return 1

    declared_names: list[str] = [canonicalize_name(requirement.name) for requirement in declared]
    print(f"    the EE's Python requirements from {NAMESPACE}.{NAME}: {', '.join(map(str, declared)) or 'none'}")
    problems = check_versions(declared)
    providers = importlib.metadata.packages_distributions()
    brought = brought_by(declared_names)
    print("==> ee-check: the packages the collection's code imports")
    for module, files in sorted(imported_packages(installed).items()):
        distributions = providers.get(module)
        where = ", ".join(sorted(files))
        if not distributions:
            problems.append(
                f"import {module} ({where}): no installed package provides it here, so its requirement can't be "
                "checked (add a pin to tests/requirements.txt)"
            )
            continue
        distribution = canonicalize_name(distributions[0])
        if distribution in declared_names:
            print(f"    {module}: {distribution}, declared")
        elif distribution in brought:
            print(f"    {module}: {distribution}, required by the declared {', '.join(brought[distribution])}")
        else:
            problems.append(
                f"import {module} ({where}): the package {distribution} is not in the collection's EE requirements "
                "(requirements.txt, read through meta/execution-environment.yml)"
            )
    for line in own_python_requirements(definition):
        if canonicalize_name(Requirement(line).name) in declared_names:
            problems.append(
                f"{EXAMPLE_EE.relative_to(ROOT)} lists {line!r} itself: the collection's metadata brings it"
            )
    if problems:
        print("ERROR: ee-check:\n" + "\n".join(f"  - {problem}" for problem in problems), file=sys.stderr)
        return 1
    print(f"==> ee-check: passed ({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
