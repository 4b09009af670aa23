# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What AWX does with a custom credential type and a job template, without AWX: run with the interpreter of the
ansible-test venv (``ansible_playbook_python``), which has Jinja2 and PyYAML.

    awx_injectors.py validate CREDENTIAL_TYPE
        checks the credential type as AWX does when it is saved: the inputs' and the injectors' schema, the
        environment variables AWX refuses, and every template rendered with StrictUndefined, each field "EXAMPLE"
    awx_injectors.py render CREDENTIAL_TYPE INPUTS_JSON PRIVATE_DATA_DIR
        validates, checks the credential's inputs (required fields, known fields), then injects it as AWX's
        inject_credential does: each `file` template rendered (ImmutableSandboxedEnvironment, the non-empty inputs as
        variables) to a 0600 file in PRIVATE_DATA_DIR/env, each `env` value rendered with `tower.filename.<name>`
        pointing at those files (AWX sets every variable, also when it renders empty) and written to
        PRIVATE_DATA_DIR/env/envvars (0600) for ansible-runner, the `extra_vars` to a file
    awx_injectors.py launch JOB_TEMPLATE SURVEY_JSON ANSWERS_JSON OVERRIDES_JSON PROJECT_DIR PRIVATE_DATA_DIR
            [--job-type run|check] [--verbosity N] [--inventory FILE] [--ident IDENT]
        prepares the job as AWX does for ansible-runner and prints its ansible-runner command line: the job
        template's extra_vars, the survey's answers (checked against the survey: required, type, min and max length)
        and the overrides in PRIVATE_DATA_DIR/env/extravars (0600), the inventory in PRIVATE_DATA_DIR/inventory/hosts,
        and `ansible-runner run PRIVATE_DATA_DIR --ident IDENT --project-dir PROJECT_DIR --playbook PLAYBOOK` with
        the options AWX passes on the command line: -v per verbosity, --check for the job type check, --diff with
        diff_mode (no process isolation: the job runs with this interpreter's ansible-playbook)
    awx_injectors.py job ARTIFACT_DIR [--host HOST]
        what AWX reads of a finished job in ansible-runner's artifacts (PRIVATE_DATA_DIR/artifacts/IDENT): rc and
        status, the host's summary and the artifact_data (set_stats) of the playbook_on_stats event, each task's
        outcome (runner_on_* events: task, resolved action, changed) and every string of every event (job_events/)

Every command prints JSON on stdout; a refusal exits 1 with the reason on stderr. The reference is AWX's
awx.main.fields.CredentialTypeInputField / CredentialTypeInjectorField (validation) and
awx_plugins.interfaces._temporary_private_inject_api.inject_credential (injection); for the job, ansible-runner's
private data directory (env/, inventory/, artifacts/), as AWX's RunJob writes and reads it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import stat
import sys
import tempfile
import typing as t
from types import SimpleNamespace

import yaml
from jinja2 import StrictUndefined
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

# AWX's ENV_BLOCKLIST: variables a credential may not set (besides ANSIBLE_*).
ENV_BLOCKLIST = frozenset(
    (
        "VIRTUAL_ENV",
        "PATH",
        "PYTHONPATH",
        "JOB_ID",
        "INVENTORY_ID",
        "INVENTORY_SOURCE_ID",
        "INVENTORY_UPDATE_ID",
        "AD_HOC_COMMAND_ID",
        "REST_API_URL",
        "REST_API_TOKEN",
        "MAX_EVENT_RES",
        "CALLBACK_QUEUE",
        "CALLBACK_CONNECTION",
        "CACHE",
        "JOB_CALLBACK_DEBUG",
        "INVENTORY_HOSTVARS",
        "AWX_HOST",
        "PROJECT_REVISION",
        "SUPERVISOR_CONFIG_PATH",
    )
)
FIELD_KEYS = {
    "type",
    "format",
    "choices",
    "id",
    "label",
    "help_text",
    "multiline",
    "secret",
    "ask_at_runtime",
    "default",
}
NAME_RE = re.compile(r"^[a-zA-Z_]+[a-zA-Z0-9_]*$")
FILE_RE = re.compile(r"^template(\.[a-zA-Z_]+[a-zA-Z0-9_]*)?$")
SURVEY_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}


class Refused(Exception):
    """What AWX would refuse, and why."""


def load_yaml(path: str) -> dict[str, t.Any]:
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    if not isinstance(data, dict):
        raise Refused(f"{path}: not a mapping")
    return data


def load_json(path: str) -> t.Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


# ------------------------------------------------------------------ validation (AWX, when the type is saved)
def validate_inputs(inputs: t.Any) -> list[dict[str, t.Any]]:
    if not isinstance(inputs, dict) or set(inputs) - {"fields", "required"}:
        raise Refused("inputs: only `fields` and `required` are allowed")
    fields = inputs.get("fields", [])
    seen: set[str] = set()
    for field in fields:
        if not isinstance(field, dict) or set(field) - FIELD_KEYS:
            raise Refused(f"inputs: field {field!r} has keys AWX does not allow: {sorted(set(field) - FIELD_KEYS)}")
        if "id" not in field or "label" not in field:
            raise Refused(f"inputs: field {field!r} needs an id and a label")
        field_id = field["id"]
        if not isinstance(field_id, str) or not NAME_RE.match(field_id):
            raise Refused(f"inputs: {field_id!r} is an invalid variable name")
        if field_id == "tower" or field_id in seen:
            raise Refused(f"inputs: field id {field_id!r} is reserved or not unique")
        seen.add(field_id)
        kind = field.setdefault("type", "string")
        if kind not in ("string", "boolean"):
            raise Refused(f"inputs: field {field_id}: type must be string or boolean")
        if "format" in field and field["format"] not in ("ssh_private_key", "url"):
            raise Refused(f"inputs: field {field_id}: unknown format")
        for key in ("choices", "multiline", "format", "secret"):
            if key in field and kind != "string":
                raise Refused(f"inputs: {key} not allowed for {kind} type ({field_id})")
        for key in ("multiline", "secret", "ask_at_runtime"):
            if key in field and not isinstance(field[key], bool):
                raise Refused(f"inputs: field {field_id}: {key} must be a boolean")
    required = inputs.get("required", [])
    if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
        raise Refused("inputs: required must be a list of field ids")
    # Not checked by AWX's schema, but a required field that does not exist could never be given.
    unknown = sorted(set(required) - seen)
    if unknown:
        raise Refused(f"inputs: required names fields that do not exist: {unknown}")
    return fields


class _Exploding:
    def __str__(self) -> str:
        raise UndefinedError("Must define unnamed file injector in order to reference `tower.filename`.")


class _ValidationTower:
    def __init__(self) -> None:
        self.filename: t.Any = _Exploding()

    def __str__(self) -> str:
        raise UndefinedError("Cannot directly reference reserved `tower` namespace container.")


def validate_injectors(injectors: t.Any, fields: list[dict[str, t.Any]]) -> None:
    if not isinstance(injectors, dict) or set(injectors) - {"file", "env", "extra_vars"}:
        raise Refused("injectors: only `file`, `env` and `extra_vars` are allowed")
    for kind, pattern in (("file", FILE_RE), ("env", NAME_RE), ("extra_vars", NAME_RE)):
        section = injectors.get(kind, {})
        if not isinstance(section, dict):
            raise Refused(f"injectors.{kind}: must be a mapping")
        for key, value in section.items():
            if not pattern.match(key):
                raise Refused(f"injectors.{kind}: {key!r} is not a valid name")
            if not isinstance(value, str):
                raise Refused(f"injectors.{kind}.{key}: must be a string")
    for name, value in injectors.get("env", {}).items():
        if name.startswith("ANSIBLE_") or name in ENV_BLOCKLIST:
            raise Refused(f"injectors.env: {name} is not allowed in credentials")
        if not value.isascii():
            raise Refused(f"injectors.env.{name}: must be ASCII")
    namespace: dict[str, t.Any] = {field["id"]: "EXAMPLE" for field in fields}
    tower = _ValidationTower()
    names = [key for key in injectors.get("file", {}) if key.startswith("template")]
    if "template" in names:
        if len(names) > 1:
            raise Refused("Must use multi-file syntax when injecting multiple files")
        tower.filename = "EXAMPLE_FILENAME"
    elif names:
        tower.filename = SimpleNamespace(**{name.split(".", 1)[1]: "EXAMPLE_FILENAME" for name in names})
    namespace["tower"] = tower
    environment = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
    for kind, section in injectors.items():
        for key, template in section.items():
            try:
                environment.from_string(template).render(namespace)
            except UndefinedError as exc:
                raise Refused(f"{key} uses an undefined field ({exc})") from exc
            except SecurityError as exc:
                raise Refused(f"Encountered unsafe code execution: {exc}") from exc
            except TemplateSyntaxError as exc:
                raise Refused(f"Syntax error rendering template for {key} inside of {kind} ({exc})") from exc


def validate(credential_type: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    if not credential_type.get("name"):
        raise Refused("the credential type needs a name")
    if credential_type.get("kind", "cloud") not in ("cloud", "net"):
        raise Refused("custom credential types are of kind cloud or net")
    fields = validate_inputs(credential_type.get("inputs", {}))
    validate_injectors(credential_type.get("injectors", {}), fields)
    return fields


def cmd_validate(args: argparse.Namespace) -> dict[str, t.Any]:
    credential_type = load_yaml(args.credential_type)
    fields = validate(credential_type)
    return {
        "name": credential_type["name"],
        "fields": [field["id"] for field in fields],
        "secret_fields": [field["id"] for field in fields if field.get("secret")],
        "required": credential_type["inputs"].get("required", []),
        "env": sorted(credential_type["injectors"].get("env", {})),
        "files": sorted(credential_type["injectors"].get("file", {})),
    }


# ------------------------------------------------------------------ injection (AWX, when a job starts)
def check_credential_inputs(fields: list[dict[str, t.Any]], required: list[str], inputs: dict[str, t.Any]) -> None:
    known = {field["id"]: field for field in fields}
    unknown = sorted(set(inputs) - set(known))
    if unknown:
        raise Refused(f"credential inputs: unknown fields {unknown}")
    missing = [name for name in required if not inputs.get(name)]
    if missing:
        raise Refused(f"credential inputs: required fields missing {missing}")
    for name, value in inputs.items():
        kind = known[name]["type"]
        if (kind == "boolean") != isinstance(value, bool) or (kind == "string" and not isinstance(value, str)):
            raise Refused(f"credential inputs: {name} must be a {kind}")


def inject(
    credential_type: dict[str, t.Any], fields: list[dict[str, t.Any]], inputs: dict[str, t.Any], private_dir: str
) -> dict[str, t.Any]:
    injectors = credential_type.get("injectors", {})
    tower = SimpleNamespace(filename=None)
    namespace: dict[str, t.Any] = {"tower": tower}
    for name, value in inputs.items():
        if isinstance(value, bool) or value:  # AWX leaves empty inputs out: they render as undefined (empty)
            namespace[name] = value
    for field in fields:
        if field["type"] == "boolean" and field["id"] not in inputs:
            namespace[field["id"]] = False
        key = field["id"]
        if field.get("format") == "ssh_private_key" and key in namespace and not str(namespace[key]).endswith("\n"):
            namespace[key] = str(namespace[key]) + "\n"

    sandbox = ImmutableSandboxedEnvironment()
    env_dir = os.path.join(private_dir, "env")
    os.makedirs(env_dir, mode=0o700, exist_ok=True)
    single: str | None = None
    files: dict[str, str] = {}
    for label, template in injectors.get("file", {}).items():
        data = sandbox.from_string(template).render(**namespace)
        handle, path = tempfile.mkstemp(dir=env_dir)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(data)
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        if "." not in label:
            single = path
        else:
            files[label.split(".", 1)[1]] = path
    tower.filename = single or SimpleNamespace(**files)

    env: dict[str, str] = {}
    for name, template in injectors.get("env", {}).items():
        if name in ENV_BLOCKLIST:
            continue
        env[name] = sandbox.from_string(template).render(**namespace)

    # the job's environment as AWX hands it to ansible-runner (here through env/envvars, 0600)
    write_private(os.path.join(env_dir, "envvars"), json.dumps(env))

    extra_vars_file = None
    extra_vars = render_extra_vars(sandbox, namespace, injectors.get("extra_vars", {}))
    if extra_vars:
        handle, extra_vars_file = tempfile.mkstemp(dir=env_dir)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(yaml.safe_dump(extra_vars))
        os.chmod(extra_vars_file, stat.S_IRUSR)
    return {"env": env, "files": files if single is None else {"": single}, "extra_vars_file": extra_vars_file}


def render_extra_vars(sandbox: ImmutableSandboxedEnvironment, namespace: dict[str, t.Any], node: t.Any) -> t.Any:
    if isinstance(node, dict):
        return {
            str(render_extra_vars(sandbox, namespace, k)): render_extra_vars(sandbox, namespace, v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [render_extra_vars(sandbox, namespace, item) for item in node]
    return sandbox.from_string(node).render(**namespace)


def cmd_render(args: argparse.Namespace) -> dict[str, t.Any]:
    credential_type = load_yaml(args.credential_type)
    fields = validate(credential_type)
    inputs = load_json(args.inputs)
    if not isinstance(inputs, dict):
        raise Refused("credential inputs: not a mapping")
    check_credential_inputs(fields, credential_type["inputs"].get("required", []), inputs)
    return inject(credential_type, fields, inputs, args.private_dir)


# ------------------------------------------------------------------ launch (AWX, the job's command line)
def check_answers(survey: dict[str, t.Any], answers: dict[str, t.Any]) -> None:
    for key in ("name", "description", "spec"):
        if key not in survey:
            raise Refused(f"survey: '{key}' missing from survey spec")
    variables: set[str] = set()
    for index, question in enumerate(survey["spec"]):
        for key in ("type", "question_name", "variable", "required"):
            if key not in question:
                raise Refused(f"survey: '{key}' missing from survey question {index}")
        if question["type"] not in SURVEY_TYPES or question["variable"] in variables:
            raise Refused(f"survey: question {index} has an unknown type or a duplicate variable")
        variables.add(question["variable"])
        if question["type"] == "password" and not isinstance(question.get("default", ""), str):
            raise Refused(f"survey: question {index}: a password default must be a string")
        name = question["variable"]
        value = answers.get(name)
        if value in (None, ""):
            if question["required"]:
                raise Refused(f"survey: '{name}' value missing")
            continue
        if question["type"] in ("text", "textarea", "password"):
            if not isinstance(value, str):
                raise Refused(f"survey: value {name} must be a string")
            low, high = int(question.get("min", 0) or 0), int(question.get("max", 1024) or 1024)
            if not low <= len(value) <= high:
                raise Refused(f"survey: '{name}' must be {low} to {high} characters long")
    unknown = sorted(set(answers) - variables)
    if unknown:
        raise Refused(f"survey: answers to no question {unknown}")


def cmd_launch(args: argparse.Namespace) -> dict[str, t.Any]:
    template = load_yaml(args.job_template)
    answers = load_json(args.answers)
    overrides = load_json(args.overrides)
    extra_vars = dict(template.get("extra_vars") or {})
    if template.get("survey_enabled"):
        check_answers(load_json(args.survey), answers)
        extra_vars.update(answers)
    elif answers:
        raise Refused("answers given but the job template has no survey")
    extra_vars.update(overrides)
    job_type = args.job_type or template.get("job_type", "run")
    if job_type != template.get("job_type", "run") and not template.get("ask_job_type_on_launch"):
        raise Refused(f"the job template does not prompt for the job type; it runs {template.get('job_type')}")
    playbook = os.path.join(args.project_dir, template["playbook"])
    if not os.path.isfile(playbook):
        raise Refused(f"the job template's playbook {template['playbook']} is not in the project")
    # The private data directory as AWX hands it to ansible-runner: the extra variables in env/extravars (0600),
    # the inventory in inventory/hosts; the job's options on the command line. env/envvars (the credential's
    # environment) is render's.
    env_dir = os.path.join(args.private_dir, "env")
    os.makedirs(env_dir, mode=0o700, exist_ok=True)
    extravars = os.path.join(env_dir, "extravars")
    write_private(extravars, json.dumps(extra_vars))
    if args.inventory:
        inventory_dir = os.path.join(args.private_dir, "inventory")
        os.makedirs(inventory_dir, mode=0o700, exist_ok=True)
        with open(args.inventory, encoding="utf-8") as handle:
            write_private(os.path.join(inventory_dir, "hosts"), handle.read())
    verbosity = template.get("verbosity", 0) if args.verbosity is None else args.verbosity
    options = ["-" + "v" * verbosity] if verbosity else []
    options += ["--check"] if job_type == "check" else []
    options += ["--diff"] if template.get("diff_mode") else []
    argv = [sys.executable, "-m", "ansible_runner", "run", args.private_dir, "--ident", args.ident]
    argv += ["--project-dir", args.project_dir, "--playbook", template["playbook"]]
    argv += ["--cmdline=" + " ".join(options)] if options else []
    return {
        "argv": argv,
        "artifact_dir": os.path.join(args.private_dir, "artifacts", args.ident),
        "extra_vars_file": extravars,
        "job_type": job_type,
    }


def write_private(path: str, text: str) -> None:
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)


# ------------------------------------------------------------------ job (AWX, what it reads of a finished job)
def strings_in(value: t.Any) -> t.Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)
    elif value is not None:
        yield str(value)


def cmd_job(args: argparse.Namespace) -> dict[str, t.Any]:
    events_dir = os.path.join(args.artifact_dir, "job_events")
    if not os.path.isdir(events_dir):
        raise Refused(f"{events_dir}: no job events (did ansible-runner run?)")
    events = [load_json(os.path.join(events_dir, name)) for name in os.listdir(events_dir) if name.endswith(".json")]
    events.sort(key=lambda event: event["counter"])
    stats = [event.get("event_data", {}) for event in events if event["event"] == "playbook_on_stats"]
    with open(os.path.join(args.artifact_dir, "rc"), encoding="utf-8") as handle:
        rc = int(handle.read().strip())
    with open(os.path.join(args.artifact_dir, "status"), encoding="utf-8") as handle:
        status = handle.read().strip()
    return {
        "rc": rc,
        "status": status,
        "event_counts": {
            name: sum(event["event"] == name for event in events) for name in {e["event"] for e in events}
        },
        "last_event": events[-1]["event"] if events else None,
        # the host summary AWX shows (playbook_on_stats, per host) and the job's artifacts (its set_stats data)
        "stats": {
            key: value.get(args.host, 0)
            for key, value in (stats[0] if stats else {}).items()
            if isinstance(value, dict) and key != "artifact_data"
        },
        "artifact_data": stats[0].get("artifact_data", {}) if stats else {},
        # each task's outcome on the host: runner_on_ok, runner_on_failed, ...
        "results": [
            {
                "event": event["event"],
                "task": event["event_data"].get("task"),
                "action": event["event_data"].get("resolved_action"),
                # None for a no_log result: its res is censored whole, changed included (AWX sees no more)
                "changed": event["event_data"].get("res", {}).get("changed", None),
            }
            for event in events
            if event["event"].startswith("runner_on_") and event["event"] != "runner_on_start"
        ],
        # every string of every event (its stdout and its event_data), for the caller to look for secrets in
        "text": "\n".join(text for event in events for text in strings_in(event)),
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    validate_cmd = commands.add_parser("validate")
    validate_cmd.add_argument("credential_type")
    render = commands.add_parser("render")
    render.add_argument("credential_type")
    render.add_argument("inputs")
    render.add_argument("private_dir")
    launch = commands.add_parser("launch")
    for name in ("job_template", "survey", "answers", "overrides", "project_dir", "private_dir"):
        launch.add_argument(name)
    launch.add_argument("--job-type", choices=["run", "check"])
    launch.add_argument("--inventory", help="the job's inventory (AWX: the template's inventory)")
    launch.add_argument("--verbosity", type=int, choices=range(6))
    launch.add_argument("--ident", default="job", help="the job's name: its artifacts go to artifacts/IDENT")
    job = commands.add_parser("job")
    job.add_argument("artifact_dir")
    job.add_argument("--host", default="localhost")
    return parser.parse_args(argv)


def main() -> int:
    args = parse_args(sys.argv[1:])
    handler = {"validate": cmd_validate, "render": cmd_render, "launch": cmd_launch, "job": cmd_job}[args.command]
    try:
        result = handler(args)
    except Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
