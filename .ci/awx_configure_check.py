"""The AWX example's configure.yml checked against the awx.awx collection, without AWX (make lint).

    python .ci/awx_configure_check.py --collections DIR [--playbook FILE] [--vars FILE]

DIR holds ansible_collections/awx/awx (the Makefile extracts it from the pinned `ansible` package of PyPI). Run with
the interpreter of the 2.19 venv. Every task of the playbook is rendered as ansible-playbook renders it (its play's
variables with the example variables file as extra vars, the lookups, the loops, the templated `args`, omit): a
variable that is not defined, a lookup that fails or an argument that is not a mapping fails the check. Then each
awx.awx task's arguments are validated, as the module would validate them, against

- the module's own argument spec, which its main() builds and hands to AnsibleModule (captured there, connection
  options included): names and aliases, types, choices, required options, mutually exclusive options, required_if;
- its documentation (what ansible-doc and Galaxy show), the same way: this also checks suboptions, which some
  modules take as a plain dict (workflow_job_template_node's approval_node);

and against what AWX needs of the playbook as a whole:

- a task that passes a no_log option (a credential's inputs, a token) is no_log itself;
- awx.awx.credential does not update secrets on each run (update_secrets: false), or no re-run would be unchanged;
- every object a task names (a project, an inventory, a credential, a job template, a workflow node...) is created
  by an earlier task of the playbook, or is one AWX comes with (the Default organization, the Vault credential
  type): the names in job_template_*.yml must match the objects configure.yml creates.

Finally the check checks itself: on every awx.awx task, a misspelt option, a value outside its choices and a
missing required option must each be refused. Exits 1 naming each problem.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ansible import context

# TaskExecutor's own templating engine: the checker renders each task as ansible-playbook 2.19 does.
from ansible._internal._templating._engine import TemplateEngine
from ansible.inventory.manager import InventoryManager
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.collections import ImmutableDict
from ansible.parsing.dataloader import DataLoader
from ansible.playbook import Playbook
from ansible.playbook.block import Block
from ansible.plugins.loader import fragment_loader, init_plugin_loader, module_loader
from ansible.utils.plugin_docs import get_docstring
from ansible.vars.manager import VariableManager

ROOT = Path(__file__).resolve().parent.parent
AWX_DIR = ROOT / "docs" / "examples" / "awx"
PREFIX = "awx.awx."
# Objects AWX comes with, which configure.yml refers to without creating them.
BUILTIN = {"organization": {"Default"}, "credential_type": {"Vault"}}
# What each module creates: the kind of object, and the option that names it.
CREATES = {
    "credential_type": ("credential_type", "name"),
    "credential": ("credential", "name"),
    "execution_environment": ("execution_environment", "name"),
    "project": ("project", "name"),
    "inventory": ("inventory", "name"),
    "host": ("host", "name"),
    "job_template": ("job_template", "name"),
    "workflow_job_template": ("workflow_job_template", "name"),
    "workflow_job_template_node": ("workflow_node", "identifier"),
    "schedule": ("schedule", "name"),
}
# The options that name other objects (that AWX looks up by name), and their kind.
REFERENCES = {
    "organization": "organization",
    "lookup_organization": "organization",
    "credential_type": "credential_type",
    "credential": "credential",
    "credentials": "credential",
    "execution_environment": "execution_environment",
    "project": "project",
    "inventory": "inventory",
    "workflow_job_template": "workflow_job_template",
    "unified_job_template": "unified_job_template",
    "success_nodes": "workflow_node",
    "failure_nodes": "workflow_node",
    "always_nodes": "workflow_node",
}
# What a workflow node or a schedule may launch.
UNIFIED_JOB_TEMPLATES = {"job_template", "workflow_job_template", "project"}
VALIDATOR_OPTIONS = ("mutually_exclusive", "required_together", "required_one_of", "required_if", "required_by")


class Captured(Exception):  # noqa: N818 - not an error: how a module's AnsibleModule arguments come out of main()
    def __init__(self, kwargs: dict[str, Any]) -> None:
        super().__init__("captured")
        self.kwargs = kwargs


def setup_ansible(collections: Path, extra_vars: Path) -> None:
    """As ansible-playbook -e @extra_vars would, with the collections of DIR first. Without facts as variables:
    ansible-core then does not warn of the templated `args` (the playbook's own warning says why it is safe)."""
    os.environ["ANSIBLE_INJECT_FACT_VARS"] = "false"
    context.CLIARGS = ImmutableDict(extra_vars=(f"@{extra_vars}",), check=False, diff=False, forks=1)
    init_plugin_loader([str(collections)])


def module_kwargs(name: str) -> dict[str, Any]:
    """The arguments the module's main() gives AnsibleModule (the whole spec: ControllerModule adds its own)."""
    module = importlib.import_module(f"ansible_collections.awx.awx.plugins.modules.{name}")
    original = AnsibleModule.__init__

    def capture(self: Any, *args: Any, **kwargs: Any) -> None:
        raise Captured(kwargs)

    AnsibleModule.__init__ = capture
    try:
        module.main()
    except Captured as captured:
        return captured.kwargs
    finally:
        AnsibleModule.__init__ = original
    raise RuntimeError(f"awx.awx.{name}: main() built no AnsibleModule")


def documented_spec(name: str) -> dict[str, Any]:
    """The module's documented options (doc fragments included) as an argument spec."""
    context = module_loader.find_plugin_with_context(PREFIX + name)
    doc = get_docstring(context.plugin_resolved_path, fragment_loader, collection_name="awx.awx")[0]

    def convert(options: dict[str, Any]) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        for option, data in options.items():
            entry = {key: data[key] for key in ("type", "elements", "choices", "required", "aliases") if key in data}
            if "suboptions" in data:
                entry["options"] = convert(data["suboptions"])
            spec[option] = entry
        return spec

    return convert(doc.get("options", {}))


def validate(spec: dict[str, Any], options: dict[str, Any], args: dict[str, Any]) -> list[str]:
    result = ArgumentSpecValidator(spec, **options).validate(copy.deepcopy(args))
    # each error named by its kind: UnsupportedError (an unknown option), ArgumentValueError (not one of the
    # choices), RequiredError, MutuallyExclusiveError, ArgumentTypeError...
    errors = [f"{type(error).__name__}: {error}" for error in result.errors]
    return errors + [f"deprecated: {item['msg']}" for item in result._deprecations]


class Module:
    """One awx.awx module: its argument spec and its documented options."""

    def __init__(self, name: str) -> None:
        self.name = name
        kwargs = module_kwargs(name)
        self.spec: dict[str, Any] = kwargs["argument_spec"]
        self.options = {key: kwargs[key] for key in VALIDATOR_OPTIONS if kwargs.get(key)}
        self.documented = documented_spec(name)

    def errors(self, args: dict[str, Any]) -> list[str]:
        return [f"argument spec: {message}" for message in validate(self.spec, self.options, args)] + [
            f"documentation: {message}" for message in validate(self.documented, {}, args)
        ]

    def no_log_given(self, args: dict[str, Any]) -> list[str]:
        return [name for name, entry in self.spec.items() if entry.get("no_log") and args.get(name) is not None]

    def mutations(self, args: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        """Broken copies of args, each of which must be refused."""
        for name in args:
            broken = {(key + "s" if key == name else key): value for key, value in args.items()}
            yield f"{name} misspelt as {name}s", broken
            if self.spec.get(name, {}).get("choices"):
                yield f"{name} outside its choices", {**args, name: "not-one-of-the-choices"}
            if self.spec.get(name, {}).get("required"):
                yield f"{name} (required) left out", {key: value for key, value in args.items() if key != name}


def tasks_of(blocks: list[Any]) -> Iterator[Any]:
    for block in blocks:
        if isinstance(block, Block):
            yield from tasks_of(block.block + block.rescue + block.always)
        elif block.action not in ("meta", "ansible.builtin.meta"):
            yield block


def rendered_calls(playbook: Path) -> Iterator[tuple[Any, str, Any, dict[str, Any] | str]]:
    """(task, resolved action, loop item, finalized arguments or the error that stopped them), in the order the
    tasks run, as TaskExecutor renders them."""
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources="localhost,")
    variables = VariableManager(loader=loader, inventory=inventory)
    host = inventory.get_host("localhost")
    for play in Playbook.load(str(playbook), variable_manager=variables, loader=loader).get_plays():
        for task in tasks_of(play.compile()):
            task_vars = variables.get_vars(play=play, task=task, host=host)
            # as TaskExecutor sets it: where lookup('file') looks
            task_vars["ansible_search_path"] = task.get_search_path()
            if loader.get_basedir() not in task_vars["ansible_search_path"]:
                task_vars["ansible_search_path"].append(loader.get_basedir())
            items: list[Any] = [None]
            loop_var = "item"
            try:
                if task.loop is not None:
                    templar = TemplateEngine(loader=loader, variables=task_vars)
                    task.loop_control.post_validate(templar=templar)
                    loop_var = task.loop_control.loop_var
                    items = templar.template(task.loop)
            except Exception as exc:  # noqa: BLE001 - any failure to render is what this check reports
                yield task, task.action, None, f"the loop does not render: {exc}"
                continue
            for item in items:
                call_vars = dict(task_vars, **({loop_var: item} if task.loop is not None else {}))
                call = task.copy()
                try:
                    call.post_validate(templar=TemplateEngine(loader=loader, variables=call_vars))
                except Exception as exc:  # noqa: BLE001
                    yield task, task.action, item, f"does not render: {exc}"
                    continue
                yield call, call.resolved_action, item, dict(call.args)


def label(task: Any, item: Any) -> str:
    return f"{task.get_name()}" + (f" ({item['name']})" if isinstance(item, dict) and "name" in item else "")


def check(playbook: Path) -> tuple[list[str], int, int]:
    """The problems, the number of awx.awx calls checked and of mutations refused."""
    problems: list[str] = []
    modules: dict[str, Module] = {}
    created: dict[str, set[str]] = {kind: set(names) for kind, names in BUILTIN.items()}
    calls = refused = 0
    for task, action, item, args in rendered_calls(playbook):
        where = label(task, item)
        if isinstance(args, str):
            problems.append(f"{where}: {args}")
            continue
        if not action.startswith(PREFIX):
            continue
        name = action[len(PREFIX) :]
        if name not in modules:
            modules[name] = Module(name)
        module = modules[name]
        calls += 1
        problems += [f"{where}: {action}: {message}" for message in module.errors(args)]
        secret = module.no_log_given(args)
        if secret and not task.no_log:
            problems.append(f"{where}: passes {', '.join(secret)} (no_log options) but the task is not no_log")
        if name == "credential" and args.get("update_secrets", True):
            problems.append(f"{where}: update_secrets is not false: every run would update the credential")
        for option, kind in REFERENCES.items():
            names = args.get(option)
            for value in names if isinstance(names, list) else [names] if isinstance(names, str) else []:
                scope = f"{args.get('workflow_job_template')}/" if kind == "workflow_node" else ""
                if scope + value not in created.get(kind, set()):
                    problems.append(f"{where}: {option} {value!r}: no earlier task creates that {kind}")
        if name in CREATES and isinstance(args.get(CREATES[name][1]), str):
            kind, key = CREATES[name]
            scope = f"{args.get('workflow_job_template')}/" if kind == "workflow_node" else ""
            created.setdefault(kind, set()).add(scope + args[key])
            if kind in UNIFIED_JOB_TEMPLATES:
                created.setdefault("unified_job_template", set()).add(args[key])
        for mutation, broken in module.mutations(args):
            if module.errors(broken):
                refused += 1
            else:
                problems.append(f"{where}: the check would not refuse {mutation}")
    if calls == 0:
        problems.append(f"{playbook}: no awx.awx task found")
    return problems, calls, refused


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--collections", type=Path, required=True, help="a directory holding ansible_collections/")
    parser.add_argument("--playbook", type=Path, default=AWX_DIR / "configure.yml")
    parser.add_argument("--vars", type=Path, default=AWX_DIR / "configure-vars.example.yml")
    args = parser.parse_args()
    started = time.monotonic()
    manifest = args.collections / "ansible_collections" / "awx" / "awx" / "MANIFEST.json"
    version = json.loads(manifest.read_text(encoding="utf-8"))["collection_info"]["version"]
    setup_ansible(args.collections.resolve(), args.vars.resolve())
    try:
        problems, calls, refused = check(args.playbook.resolve())
    except Exception as exc:  # noqa: BLE001 - a playbook ansible-playbook could not load: say why, as it would
        print(f"{args.playbook}: {exc}", file=sys.stderr)
        return 1
    if problems:
        print(f"{args.playbook}: {len(problems)} problem(s) against awx.awx {version}:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(
        f"{args.playbook.name}: {calls} awx.awx calls valid against awx.awx {version} (argument specs and"
        f" documentation), every name created before use; {refused} broken copies refused"
        f" ({time.monotonic() - started:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
