"""Dockerfile, docker-compose.yml and deploy/ are correct by construction (no Docker engine needed)."""

from __future__ import annotations

import ast
import re
import shlex
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
MOSQUITTO_CONF = ROOT / "deploy" / "mosquitto.conf"

EXPECTED_SERVICES = {"mosquitto", "postgres", "migrate", "web", "ingest", "vee", "simulator"}
APP_SERVICES = {"migrate", "web", "ingest", "vee", "simulator"}
ONE_SHOT = {"migrate"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


@cache
def compose() -> dict[str, Any]:
    """Parse docker-compose.yml (merge keys and anchors resolved by PyYAML)."""
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def services() -> dict[str, Any]:
    """Return the compose services."""
    found: dict[str, Any] = compose()["services"]
    return found


def command_words(service: dict[str, Any]) -> list[str]:
    """Return a service's command as a word list (list form or a shell string)."""
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(w) for w in command]


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Return {dependency: condition}; the short list form means service_started."""
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def has_healthcheck(service: dict[str, Any]) -> bool:
    """Return True if the service defines an enabled healthcheck with a test."""
    check = service.get("healthcheck") or {}
    return bool(check.get("test")) and not check.get("disable", False)


def module_exists(module: str) -> bool:
    """Return True if `python -m module` would find a module or package in the repo."""
    base = ROOT / module.replace(".", "/")
    return (base / "__main__.py").is_file() or base.with_suffix(".py").is_file()


def dockerfile_instructions() -> list[tuple[str, str]]:
    """Return (INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    lines = [
        line
        for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
        if not line.lstrip().startswith("#")
    ]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    result = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, args = line.strip().partition(" ")
            result.append((instruction.upper(), args.strip()))
    return result


# ---------------------------------------------------------------- compose: services


def test_every_expected_service_exists() -> None:
    """The stack has the broker, database, migration, portal, ingest and simulator."""
    assert set(services()) >= EXPECTED_SERVICES


def test_only_the_simulator_is_demo_only() -> None:
    """`--profile demo` adds the simulator; a real stack (no profile) runs everything else."""
    profiled = {name: s["profiles"] for name, s in services().items() if "profiles" in s}
    assert profiled == {"simulator": ["demo"]}
    for name, service in services().items():
        assert "simulator" not in depends_on(service), f"{name} would pull in the simulator"


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_services_build_the_one_image(name: str) -> None:
    """Every app service builds from the repository root's Dockerfile."""
    build = services()[name].get("build")
    context = build.get("context") if isinstance(build, dict) else build
    assert context == "."


def test_every_build_uses_the_repo_root() -> None:
    """No service builds from anywhere else."""
    for name, service in services().items():
        if "build" in service:
            build = service["build"]
            assert (build.get("context") if isinstance(build, dict) else build) == ".", name


def test_images_are_pinned_to_a_major_version() -> None:
    """Third-party images are the agreed ones."""
    assert services()["mosquitto"]["image"] == "eclipse-mosquitto:2"
    assert services()["postgres"]["image"] == "postgres:16"


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("migrate", "app.manage"),
        ("ingest", "app.ingest"),
        ("vee", "app.ingest"),
        ("simulator", "simulator"),
    ],
)
def test_entry_point_commands(name: str, module: str) -> None:
    """Each process service runs its agreed `python -m` entry point."""
    words = command_words(services()[name])
    assert words[:3] == ["python", "-m", module]


def python_m_modules() -> list[tuple[str, str]]:
    """Return (service, module) for every `python -m X` in a compose command."""
    found = []
    for name, service in services().items():
        words = command_words(service)
        found.extend((name, words[i + 1]) for i, word in enumerate(words[:-1]) if word == "-m")
    return found


@pytest.mark.parametrize(("service", "module"), python_m_modules())
def test_python_m_modules_exist(service: str, module: str) -> None:
    """Every `python -m X` resolves to X/__main__.py or X.py in the repo."""
    assert module_exists(module), f"{service}: no module {module!r} in the repo"


def test_web_runs_gunicorn_on_create_portal() -> None:
    """The portal runs gunicorn against app:create_portal(), and app/__init__.py defines it."""
    words = command_words(services()["web"])
    assert words[0] == "gunicorn"
    assert words[words.index("--bind") + 1] == "0.0.0.0:8000"
    target = words[-1]
    module, _, attr = target.partition(":")
    assert attr.removesuffix("()") == "create_portal"
    source = ROOT / module.replace(".", "/") / "__init__.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    assert any(
        isinstance(node, ast.FunctionDef) and node.name == "create_portal" for node in tree.body
    )
    assert services()["web"]["ports"] == ["${PORT:-8000}:8000"]


@pytest.mark.parametrize("name", sorted(EXPECTED_SERVICES))
def test_every_service_has_a_healthcheck_or_is_one_shot(name: str) -> None:
    """Long-running services can be probed; one-shot jobs never restart."""
    service = services()[name]
    if name in ONE_SHOT:
        assert service.get("restart", "no") == "no"
    else:
        assert has_healthcheck(service)
        assert service.get("restart") == "unless-stopped"


def test_depends_on_refers_to_existing_services_with_valid_conditions() -> None:
    """Each dependency exists, and its condition is one the target can satisfy."""
    all_services = services()
    for name, service in all_services.items():
        for dep, condition in depends_on(service).items():
            assert dep in all_services, f"{name} depends on unknown {dep}"
            assert condition in CONDITIONS, f"{name}: {condition}"
            if condition == "service_healthy":
                assert has_healthcheck(all_services[dep]), f"{name} waits on {dep}'s health"
            if condition == "service_completed_successfully":
                assert dep in ONE_SHOT, f"{name} waits for {dep} to exit"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("migrate", {"postgres": "service_healthy"}),
        (
            "web",
            {"postgres": "service_healthy", "migrate": "service_completed_successfully"},
        ),
        (
            "ingest",
            {
                "mosquitto": "service_healthy",
                "postgres": "service_healthy",
                "migrate": "service_completed_successfully",
            },
        ),
        (
            "vee",
            {"postgres": "service_healthy", "migrate": "service_completed_successfully"},
        ),
        # The ingest subscribed first: the broker drops what no session subscribes to.
        ("simulator", {"mosquitto": "service_healthy", "ingest": "service_healthy"}),
    ],
)
def test_start_order(name: str, expected: dict[str, str]) -> None:
    """Services start only once what they need is ready."""
    assert depends_on(services()[name]) == expected


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_environment(name: str) -> None:
    """App services share one environment; SECRET_KEY is required, never defaulted."""
    env = services()[name]["environment"]
    assert env["SECRET_KEY"] == "${SECRET_KEY:?set SECRET_KEY}"
    assert env["DATABASE_URL"] == (
        "postgresql+psycopg://wattline:${POSTGRES_PASSWORD:-wattline}@postgres:5432/wattline"
    )
    assert env["MQTT_URL"] == "mqtt://mosquitto:1883"
    assert env["WATTLINE_DEMO"] == "${WATTLINE_DEMO:-0}"


def test_postgres_credentials_match_the_database_url() -> None:
    """The database service creates the user, password and database the apps connect with."""
    env = services()["postgres"]["environment"]
    assert env["POSTGRES_USER"] == "wattline"
    assert env["POSTGRES_DB"] == "wattline"
    assert env["POSTGRES_PASSWORD"] == "${POSTGRES_PASSWORD:-wattline}"
    assert "pg_isready" in " ".join(services()["postgres"]["healthcheck"]["test"])


def test_named_volumes_are_declared() -> None:
    """Every named volume a service mounts is declared at the top level."""
    declared = set(compose().get("volumes") or {})
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts undeclared volume {source}"
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services()["postgres"]["volumes"])


def test_bind_mount_sources_exist() -> None:
    """Every bind-mounted host path exists in the repo."""
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} missing"


def test_dollar_signs_are_interpolations_or_escaped() -> None:
    """A bare `$NAME` would be interpolated by compose; literal dollars must be `$$`."""

    def strings(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [s for k, v in node.items() for s in strings(k) + strings(v)]
        if isinstance(node, list):
            return [s for item in node for s in strings(item)]
        return [node] if isinstance(node, str) else []

    bare = [s for s in strings(compose()) if re.search(r"\$(?![{$])", s.replace("$$", ""))]
    assert bare == []


# ---------------------------------------------------------------- mosquitto


def test_mosquitto_config_exists_and_is_mounted() -> None:
    """deploy/mosquitto.conf is mounted as the broker's config and allows anonymous on 1883."""
    assert MOSQUITTO_CONF.is_file()
    mounts = services()["mosquitto"]["volumes"]
    assert "./deploy/mosquitto.conf:/mosquitto/config/mosquitto.conf:ro" in mounts
    settings = {
        line.split(None, 1)[0]: line.split(None, 1)[1].strip()
        for line in MOSQUITTO_CONF.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }
    assert settings["listener"] == "1883"
    assert settings["allow_anonymous"] == "true"
    assert settings["persistence"] == "true"
    assert any(v.endswith(":" + settings["persistence_location"].rstrip("/")) for v in mounts)


def test_mosquitto_healthcheck_subscribes_to_sys() -> None:
    """The broker is healthy once a client can subscribe and receive a $SYS message."""
    test = services()["mosquitto"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    assert "mosquitto_sub" in test
    assert test[test.index("-t") + 1].startswith("$$SYS/")  # compose turns $$ into $


# ---------------------------------------------------------------- Dockerfile


def test_dockerfile_base_image() -> None:
    """The image builds on python:3.11-slim."""
    froms = [args for instruction, args in dockerfile_instructions() if instruction == "FROM"]
    assert froms == ["python:3.11-slim"]


def test_dockerfile_copy_sources_exist() -> None:
    """Every COPY source exists in the build context (the repo root)."""
    copies = [args for instruction, args in dockerfile_instructions() if instruction == "COPY"]
    assert copies
    for args in copies:
        words = [w for w in shlex.split(args) if not w.startswith("--")]
        for source in words[:-1]:
            assert (ROOT / source).exists(), f"COPY source {source} missing"


def test_dockerfile_copies_every_package() -> None:
    """The runtime packages are all in the image."""
    copied = " ".join(
        args for instruction, args in dockerfile_instructions() if instruction == "COPY"
    )
    for package in ("app/", "simulator/", "roi/", "partners/", "requirements.txt"):
        assert package in copied


def test_dockerfile_installs_requirements() -> None:
    """Dependencies come from the pinned requirements.txt, without pip's cache."""
    runs = [args for instruction, args in dockerfile_instructions() if instruction == "RUN"]
    assert any("pip install --no-cache-dir -r requirements.txt" in run for run in runs)
    assert (ROOT / "requirements.txt").is_file()


def test_dockerfile_does_not_run_as_root() -> None:
    """The last USER is a named, non-root user, set after the last RUN."""
    instructions = dockerfile_instructions()
    users = [i for i, (instruction, _) in enumerate(instructions) if instruction == "USER"]
    assert users
    last_user = instructions[users[-1]][1]
    assert last_user.split(":")[0] not in {"root", "0"}
    last_run = max(i for i, (instruction, _) in enumerate(instructions) if instruction == "RUN")
    assert users[-1] > last_run


def test_dockerfile_exposes_and_probes_the_portal() -> None:
    """The image exposes 8000, probes /api/v1/health with urllib, and defaults to the portal."""
    instructions = dict(dockerfile_instructions())
    assert instructions["EXPOSE"] == "8000"
    assert "urllib.request" in instructions["HEALTHCHECK"]
    assert "http://127.0.0.1:8000/api/v1/health" in instructions["HEALTHCHECK"]
    assert "'app:create_portal()'" in shlex.join(ast.literal_eval(instructions["CMD"]))
