"""Checks of deploy/compose.yaml, its Dockerfiles, init script and example environment.

No Docker engine is needed: the compose file is validated against the Compose
Specification's JSON schema (kept in shared/schemas/ beside the repository) and its
references are checked against the repository and the `nighttalk` command.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO_ROOT / "deploy"
COMPOSE_FILE = DEPLOY_DIR / "compose.yaml"
ENV_EXAMPLE = DEPLOY_DIR / ".env.example"
INIT_SCRIPT = DEPLOY_DIR / "postgres" / "init.sh"
SCHEMA_FILE = REPO_ROOT.parent / "shared" / "schemas" / "compose-spec.json"

APP_SERVICES = {"intake": 8101, "routing": 8102, "supervision": 8103, "notify": 8104}
CONSUMING_SERVICES = ("intake", "routing", "supervision", "notify")
LONG_RUNNING_VERBS = {"api", "relay", "consume"}
ONE_SHOT_VERBS = {"migrate", "seed"}


# ----------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def compose() -> dict:
    assert COMPOSE_FILE.is_file(), f"missing {COMPOSE_FILE}"
    with COMPOSE_FILE.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)  # resolves anchors and << merge keys, as Compose does
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), "no services"
    return data


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def command_of(service: dict) -> list[str]:
    cmd = service.get("command")
    if cmd is None:
        return []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def verb_of(service: dict) -> str | None:
    """`migrate` for ["nighttalk", "intake", "migrate"], None for infrastructure."""
    cmd = command_of(service)
    return cmd[2] if len(cmd) >= 3 and cmd[0] == "nighttalk" else None


def app_of(service: dict) -> str | None:
    cmd = command_of(service)
    return cmd[1] if len(cmd) >= 2 and cmd[0] == "nighttalk" else None


def depends_on(service: dict) -> dict[str, dict]:
    """depends_on in its long form; the short (list) form means condition service_started."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {"condition": "service_started"} for name in deps}
    return {name: (spec or {"condition": "service_started"}) for name, spec in deps.items()}


_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _closing_brace(text: str, start: int) -> int:
    depth = 0
    for i in range(start, len(text)):
        if text.startswith("${", i):
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(f"unbalanced ${{ in {text!r}")


def interpolate(text: str, env: dict[str, str], seen: list | None = None) -> str:
    """Compose-style interpolation: $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e}, nested.

    Every variable met is appended to ``seen`` as (name, operator, raw default).
    """
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            end = _closing_brace(text, i)
            body = text[i + 2 : end]
            match = _VAR.match(body)
            assert match, f"bad interpolation ${{{body}}}"
            name, rest = match.group(), body[match.end() :]
            op = next((o for o in (":-", "-", ":?", "?", ":+", "+") if rest.startswith(o)), "")
            assert rest == "" or op, f"bad interpolation ${{{body}}}"
            arg = rest[len(op) :]
            if seen is not None:
                seen.append((name, op, arg))
            value = env.get(name)
            if op == ":-":
                out.append(value if value else interpolate(arg, env, seen))
            elif op == "-":
                out.append(value if value is not None else interpolate(arg, env, seen))
            elif op in (":?", "?"):
                if not value and (op == ":?" or value is None):
                    raise KeyError(f"{name} is required: {arg}")
                out.append(value)
            elif op in (":+", "+"):
                out.append(
                    interpolate(arg, env, seen)
                    if (value if op == ":+" else value is not None)
                    else ""
                )
            else:
                out.append(value or "")
            i = end + 1
        elif text[i] == "$" and _VAR.match(text, i + 1):
            match = _VAR.match(text, i + 1)
            if seen is not None:
                seen.append((match.group(), "", ""))
            out.append(env.get(match.group(), ""))
            i = match.end()
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def strings_in(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings_in(key)
            yield from strings_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings_in(value)


def resolved_env(service: dict, env: dict[str, str] | None = None) -> dict[str, str]:
    """The service's environment with Compose defaults applied (no deploy/.env)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {k: interpolate(str(v), env or {}) for k, v in raw.items() if v is not None}


def read_env_example() -> tuple[dict[str, str], dict[str, str]]:
    """(values expanded in order as Compose does for .env, comment line above each key)."""
    values, comments, previous = {}, {}, ""
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        match = re.match(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)$", stripped)
        if match:
            values[match.group(1)] = interpolate(match.group(2), values)
            comments[match.group(1)] = previous
        previous = stripped if stripped.startswith("#") else ""
    return values, comments


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions, current = [], ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not current and line.lstrip().startswith("#"):
            continue
        if current and line.lstrip().startswith("#"):
            continue  # comment lines inside a continuation are ignored by Docker
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip():
            word, _, rest = current.strip().partition(" ")
            instructions.append((word.upper(), rest.strip()))
        current = ""
    return instructions


def build_dockerfiles(services: dict) -> dict[str, tuple[Path, Path]]:
    """{service: (context dir, Dockerfile)} for every service with a build section."""
    found = {}
    for name, svc in services.items():
        build = svc.get("build")
        if build is None:
            continue
        if isinstance(build, str):
            build = {"context": build}
        context = (COMPOSE_FILE.parent / interpolate(build.get("context", "."), {})).resolve()
        dockerfile = context / interpolate(build.get("dockerfile", "Dockerfile"), {})
        found[name] = (context, dockerfile)
    return found


# ----------------------------------------------------------------------------- schema


def test_compose_matches_compose_spec_schema(compose):
    if not SCHEMA_FILE.is_file():
        pytest.fail(
            f"Compose Specification schema not found at {SCHEMA_FILE}; it is expected in the "
            "shared/ folder beside the repository (shared/schemas/compose-spec.json)."
        )
    from jsonschema import Draft7Validator

    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    Draft7Validator.check_schema(schema)
    errors = sorted(Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    report = "\n".join(f"  {'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors)
    assert not errors, f"{COMPOSE_FILE} breaks the Compose spec:\n{report}"


def test_expected_processes_are_all_there(services):
    expected = {"postgres", "rabbitmq", "routing-seed"}
    for app in APP_SERVICES:
        expected |= {f"{app}-migrate", f"{app}-api", f"{app}-relay"}
    expected |= {f"{app}-consumer" for app in CONSUMING_SERVICES}
    assert expected <= set(services), f"missing services: {sorted(expected - set(services))}"
    for name, svc in services.items():
        app = app_of(svc)
        if app is not None:
            assert name.startswith(f"{app}-"), f"{name} runs `nighttalk {app} ...`"
            expected_tail = {"consume": "consumer"}.get(verb_of(svc), verb_of(svc))
            assert name == f"{app}-{expected_tail}", f"{name} runs {command_of(svc)}"


# ----------------------------------------------------------------------------- images


def test_build_dockerfiles_exist(services):
    builds = build_dockerfiles(services)
    for app in APP_SERVICES:
        assert any(n.startswith(f"{app}-") for n in builds), f"no service builds {app}'s image"
    for name, (context, dockerfile) in builds.items():
        assert context.is_dir(), f"{name}: build context {context} is not a directory"
        assert dockerfile.is_file(), f"{name}: Dockerfile {dockerfile} does not exist"
        app = app_of(services[name])
        assert dockerfile == REPO_ROOT / "services" / app / "Dockerfile", (
            f"{name} runs {app} but builds {dockerfile}"
        )


def test_services_of_one_app_share_one_image(services):
    images: dict[str, set] = {}
    for svc in services.values():
        if app_of(svc):
            images.setdefault(app_of(svc), set()).add(svc.get("image"))
    for app, tags in images.items():
        assert len(tags) == 1 and None not in tags, f"{app} processes use images {tags}"


def test_dockerfile_copy_sources_exist(services):
    checked = 0
    for name, (context, dockerfile) in build_dockerfiles(services).items():
        if not dockerfile.is_file():
            pytest.fail(f"{name}: {dockerfile} missing")
        for instruction, args in dockerfile_instructions(dockerfile):
            if instruction not in ("COPY", "ADD"):
                continue
            if args.startswith("["):
                parts = json.loads(args)
            else:
                parts = shlex.split(args)
            if any(p.startswith("--from") for p in parts):
                continue  # copies from another stage or image
            parts = [p for p in parts if not p.startswith("--")]
            assert len(parts) >= 2, f"{dockerfile}: bad {instruction} {args}"
            for source in parts[:-1]:
                assert not source.startswith(("http://", "https://")), (
                    f"{dockerfile}: remote {source}"
                )
                matches = glob.glob(str(context / source))
                assert matches, f"{dockerfile}: {instruction} source {source!r} not in {context}"
                checked += 1
    assert checked, "no COPY instruction checked"


def test_dockerfiles_run_as_non_root_with_a_default_api_cmd():
    for app in APP_SERVICES:
        dockerfile = REPO_ROOT / "services" / app / "Dockerfile"
        assert dockerfile.is_file(), f"missing {dockerfile}"
        instructions = dockerfile_instructions(dockerfile)
        assert instructions[0][0] in ("FROM", "ARG"), f"{dockerfile} does not start with FROM"
        assert any(i == "FROM" and a.startswith("python:3.11-slim") for i, a in instructions)
        users = [a for i, a in instructions if i == "USER"]
        assert users and users[-1].split(":")[0] not in ("root", "0"), f"{dockerfile} runs as root"
        cmds = [a for i, a in instructions if i == "CMD"]
        assert cmds and json.loads(cmds[-1]) == ["nighttalk", app, "api"], (
            f"{dockerfile}: CMD {cmds}"
        )


# ----------------------------------------------------------------------------- commands


def _resolve_nighttalk(argv: list[str]):
    """Walk `nighttalk a b ...` through the click group; return the leaf or raise AssertionError."""
    import click

    try:
        from servicekit.cli import main
    except ImportError as exc:  # pragma: no cover - only while servicekit is not installed
        pytest.fail(f"cannot import servicekit.cli (install libs/servicekit): {exc}")

    assert argv[0] == "nighttalk", argv
    ctx = click.Context(main, info_name="nighttalk")
    cmd = main
    words = argv[1:]
    while words and isinstance(cmd, click.Group):
        word = words.pop(0)
        assert not word.startswith("-"), f"{argv}: option {word} before a subcommand"
        sub = cmd.get_command(ctx, word)
        assert sub is not None, (
            f"`{' '.join(argv)}`: {ctx.command_path} has no subcommand {word!r}; "
            f"it has {cmd.list_commands(ctx)}"
        )
        assert word in cmd.list_commands(ctx), (
            f"{word} resolves but is not listed by {ctx.command_path}"
        )
        ctx = click.Context(sub, parent=ctx, info_name=word)
        cmd = sub
    assert not isinstance(cmd, click.Group), f"`{' '.join(argv)}` names a group, not a command"
    # Any remaining words must be options or arguments the leaf command accepts.
    options = {
        o: p for p in cmd.params if isinstance(p, click.Option) for o in p.opts + p.secondary_opts
    }
    takes_args = any(isinstance(p, click.Argument) for p in cmd.params)
    while words:
        word = words.pop(0)
        if word.startswith("-"):
            name, has_value = word.split("=", 1)[0], "=" in word
            assert name in options, f"`{' '.join(argv)}`: {cmd.name} has no option {name}"
            if not (options[name].is_flag or has_value) and words:
                words.pop(0)  # the option's value
        else:
            assert takes_args, f"`{' '.join(argv)}`: {cmd.name} takes no argument {word!r}"
    return cmd


def test_nighttalk_commands_resolve(services):
    argvs = [command_of(svc) for svc in services.values() if command_of(svc)[:1] == ["nighttalk"]]
    for app in APP_SERVICES:  # the images' default CMD
        for instruction, args in dockerfile_instructions(
            REPO_ROOT / "services" / app / "Dockerfile"
        ):
            if instruction == "CMD":
                argvs.append(json.loads(args))
    assert len(argvs) >= 17, f"too few nighttalk commands found: {argvs}"
    for argv in argvs:
        _resolve_nighttalk(argv)


# ----------------------------------------------------------------------------- mounts


def bind_sources(svc: dict) -> list[tuple[str, str]]:
    """(host source, container target) of every bind mount of a service."""
    mounts = []
    for volume in svc.get("volumes") or []:
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            if source.startswith((".", "/", "~")):
                mounts.append((source, rest.split(":")[0]))
        elif volume.get("type") == "bind":
            mounts.append((volume["source"], volume["target"]))
    return mounts


def test_mounted_files_exist(services):
    for name, svc in services.items():
        for source, _ in bind_sources(svc):
            path = (COMPOSE_FILE.parent / os.path.expanduser(interpolate(source, {}))).resolve()
            assert path.exists(), f"{name} mounts {source}, but {path} does not exist"


def test_named_volumes_are_declared(compose, services):
    declared = set(compose.get("volumes") or {})
    for name, svc in services.items():
        for volume in svc.get("volumes") or []:
            source = (
                volume.partition(":")[0] if isinstance(volume, str) else volume.get("source", "")
            )
            kind = (
                "bind"
                if isinstance(volume, str) and source.startswith((".", "/", "~"))
                else (volume.get("type", "volume") if isinstance(volume, dict) else "volume")
            )
            if kind == "volume" and source:
                assert source in declared, f"{name} uses undeclared volume {source}"


def test_postgres_runs_the_init_script(services):
    mounts = dict(
        (target.rsplit("/", 1)[0], (COMPOSE_FILE.parent / source).resolve())
        for source, target in bind_sources(services["postgres"])
    )
    assert mounts.get("/docker-entrypoint-initdb.d") == INIT_SCRIPT.resolve(), (
        f"postgres does not mount {INIT_SCRIPT} into /docker-entrypoint-initdb.d: {mounts}"
    )
    assert os.access(INIT_SCRIPT, os.X_OK), f"{INIT_SCRIPT} is not executable"
    script = INIT_SCRIPT.read_text(encoding="utf-8")
    for app in APP_SERVICES:
        assert re.search(rf"^create_service_database {app}\s", script, re.M), f"init.sh skips {app}"
        assert f"{app.upper()}_DB_PASSWORD" in script


# ----------------------------------------------------------------------------- dependencies


def test_depends_on_targets_exist(services):
    for name, svc in services.items():
        for target in depends_on(svc):
            assert target in services, f"{name} depends on unknown service {target}"
            assert target != name, f"{name} depends on itself"


def test_one_shot_dependencies_wait_for_success(services):
    one_shots = {
        n for n, s in services.items() if verb_of(s) in ONE_SHOT_VERBS or n.endswith("-migrate")
    }
    assert one_shots, "no migrate/seed services"
    for name, svc in services.items():
        for target, spec in depends_on(svc).items():
            if target in one_shots or target.endswith(("-migrate", "-seed")):
                assert spec.get("condition") == "service_completed_successfully", (
                    f"{name} -> {target} must use condition service_completed_successfully, "
                    f"not {spec.get('condition')}"
                )
            if target in ("postgres", "rabbitmq"):
                assert spec.get("condition") == "service_healthy", (
                    f"{name} -> {target} must wait for healthy"
                )


def _reaches(services: dict, start: str, goal: str) -> bool:
    todo, seen = [start], set()
    while todo:
        current = todo.pop()
        if current == goal:
            return True
        if current not in seen and current in services:
            seen.add(current)
            todo.extend(depends_on(services[current]))
    return False


def test_every_process_waits_for_its_migration_and_the_broker(services):
    for name, svc in services.items():
        app, verb = app_of(svc), verb_of(svc)
        if app is None or verb == "migrate":
            continue
        assert _reaches(services, name, f"{app}-migrate"), f"{name} does not wait for {app}-migrate"
        if verb in LONG_RUNNING_VERBS:
            assert _reaches(services, name, "rabbitmq"), f"{name} does not wait for rabbitmq"
        if app == "routing" and verb in ("api", "consume"):
            assert _reaches(services, name, "routing-seed"), (
                f"{name} starts before the unit directory"
            )


# ----------------------------------------------------------------------------- health and limits


def _long_running(name: str, svc: dict) -> bool:
    return name in ("postgres", "rabbitmq") or verb_of(svc) in LONG_RUNNING_VERBS


def test_long_running_services_have_healthchecks_and_restart(services):
    for name, svc in services.items():
        if not _long_running(name, svc):
            continue
        check = svc.get("healthcheck") or {}
        test = check.get("test")
        assert test and not check.get("disable"), f"{name} has no healthcheck"
        assert not (isinstance(test, list) and test[0] == "NONE"), (
            f"{name} disables its healthcheck"
        )
        assert svc.get("restart") == "unless-stopped", f"{name}: restart is {svc.get('restart')!r}"


def test_one_shots_are_not_restarted(services):
    for name, svc in services.items():
        if verb_of(svc) in ONE_SHOT_VERBS:
            assert svc.get("restart", "no") in ("no", "on-failure"), f"{name} would restart forever"


def test_api_healthcheck_probes_readyz_on_its_port(services):
    for app, port in APP_SERVICES.items():
        svc = services[f"{app}-api"]
        env = resolved_env(svc)
        assert env.get("PORT") == str(port), f"{app}-api PORT={env.get('PORT')}"
        published = [interpolate(str(p), {}) for p in svc.get("ports") or []]
        assert any(p.split(":")[-1].split("/")[0] == str(port) for p in published), published
        test = " ".join(svc["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/readyz" in test or f"localhost:{port}/readyz" in test, test
        assert "curl" not in test and "wget" not in test, f"{app}-api: slim images lack {test}"
        assert env.get("PROMETHEUS_MULTIPROC_DIR"), f"{app}-api has no PROMETHEUS_MULTIPROC_DIR"
        assert "WEB_CONCURRENCY" in env


def test_every_service_has_a_memory_limit(services):
    for name, svc in services.items():
        memory = (((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}).get(
            "memory"
        )
        assert memory and re.fullmatch(r"\d+(\.\d+)?[bkmgBKMG]?", str(memory)), (
            f"{name}: memory {memory!r}"
        )


def test_consumers_and_relays_can_scale(services):
    for name, svc in services.items():
        if verb_of(svc) in ("consume", "relay"):
            assert "container_name" not in svc and not svc.get("ports"), f"{name} cannot be scaled"


# ----------------------------------------------------------------------------- environment


def test_each_process_sees_only_its_own_database(services):
    for name, svc in services.items():
        app = app_of(svc)
        if app is None:
            continue
        env = resolved_env(svc)
        urls = {k for k in env if k.endswith("_DATABASE_URL")}
        assert urls == {f"{app.upper()}_DATABASE_URL"}, f"{name} sees {sorted(urls)}"
        # Intake protects visitors' data; notify keeps the contact it needs, encrypted too.
        assert ("NIGHTTALK_PII_KEY" in env) == (app in ("intake", "notify")), (
            f"{name}: PII key only where visitor data is kept"
        )
        for key in ("AMQP_URL", "NIGHTTALK_JWT_SECRET", "LOG_LEVEL"):
            assert env.get(key), f"{name} lacks {key}"


def test_default_credentials_agree(services):
    pg_env = resolved_env(services["postgres"])
    rabbit_env = resolved_env(services["rabbitmq"])
    for name, svc in services.items():
        app = app_of(svc)
        if app is None:
            continue
        env = resolved_env(svc)
        url = urlsplit(env[f"{app.upper()}_DATABASE_URL"])
        assert url.scheme == "postgresql+psycopg", url.scheme
        assert (url.hostname, url.port) == ("postgres", 5432), f"{name}: {url.netloc}"
        assert url.username == app and url.path == f"/{app}", f"{name}: {url.username}@{url.path}"
        assert url.password == pg_env[f"{app.upper()}_DB_PASSWORD"], f"{name}: db password mismatch"
        amqp = urlsplit(env["AMQP_URL"])
        assert amqp.hostname == "rabbitmq", f"{name}: AMQP host {amqp.hostname}"
        assert (amqp.username, amqp.password) == (
            rabbit_env["RABBITMQ_DEFAULT_USER"],
            rabbit_env["RABBITMQ_DEFAULT_PASS"],
        ), f"{name}: AMQP credentials differ from the broker's"


def test_env_example_documents_every_variable(compose):
    assert ENV_EXAMPLE.is_file(), f"missing {ENV_EXAMPLE}"
    values, comments = read_env_example()
    seen: list = []
    for text in strings_in(compose):
        interpolate(text, {}, seen)
    used = {name for name, _, _ in seen}
    assert used, "compose.yaml uses no variables"
    assert not used - set(values), f"not in .env.example: {sorted(used - set(values))}"
    assert not set(values) - used, f".env.example has unused {sorted(set(values) - used)}"
    for name in values:
        assert comments[name], f".env.example: {name} has no comment line above it"
    # The defaults written in compose.yaml are the values written in .env.example.
    for name, op, default in seen:
        assert op == ":-", f"${{{name}}} in compose.yaml has no :- default"
        assert interpolate(default, {}) == values[name], (
            f"{name}: compose default {interpolate(default, {})!r} != .env.example {values[name]!r}"
        )
    # And .env.example mentions the service-level variables the processes read.
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    for name in (
        "AMQP_URL",
        "NIGHTTALK_JWT_SECRET",
        "NIGHTTALK_PII_KEY",
        "LOG_LEVEL",
        "WEB_CONCURRENCY",
        "PORT",
        "PROMETHEUS_MULTIPROC_DIR",
        *(f"{a.upper()}_DATABASE_URL" for a in APP_SERVICES),
    ):
        assert re.search(rf"^#? ?{name}=", text, re.M), f".env.example does not document {name}"


def documented_settings() -> dict[str, str]:
    """Return each variable of docs/configuration.md with the heading of its section."""
    found, section = {}, ""
    for line in (REPO_ROOT / "docs" / "configuration.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line[3:]
        match = re.match(r"\| `([A-Z][A-Z0-9_]*)` \|", line)
        if match:
            found[match.group(1)] = section
    return found


# Documented settings compose does not pass on, and why.
NOT_FOR_COMPOSE = {
    "NIGHTTALK_VAR_DIR": "local SQLite files and metrics folders of `make run`",
    "METRICS_PORT": "a port per worker process: an override file names them where scraped",
    "METRICS_ADDR": "goes with METRICS_PORT",
    "RABBITMQ_USER": "compose builds AMQP_URL from it; `nighttalk broker definitions` reads it",
    "RABBITMQ_PASSWORD": "goes with RABBITMQ_USER",
}


def test_every_documented_setting_reaches_the_processes_that_read_it(services):
    """An operator configures a compose deployment through deploy/.env alone."""
    processes: dict[str, list[dict[str, str]]] = {}
    for svc in services.values():
        app = app_of(svc)
        if app is not None:
            processes.setdefault(app, []).append(resolved_env(svc))
            processes.setdefault(f"{app} {verb_of(svc)}", []).append(resolved_env(svc))
    sections = {"Intake": "intake", "Routing": "routing", "Supervision": "supervision"}
    sections["Notify"] = "notify deliver"
    checked = 0
    for name, section in documented_settings().items():
        if section == "Tests only" or name in NOT_FOR_COMPOSE:
            continue
        if section == "Every service":
            readers = [env for app in APP_SERVICES for env in processes[app]]
            assert all(name in env for env in readers if not name.endswith("_DATABASE_URL")), (
                f"{name} is not given to every process"
            )
            continue
        if section.startswith("API processes"):
            readers = [env for app in APP_SERVICES for env in processes[f"{app} api"]]
            assert all(name in env for env in readers), f"{name} is not given to every API"
            continue
        assert section in sections, f"{name}: section {section!r} has no process to check"
        assert any(name in env for env in processes[sections[section]]), (
            f"{name} ({section}) reaches no {sections[section]} process under compose"
        )
        checked += 1
    assert checked > 20
