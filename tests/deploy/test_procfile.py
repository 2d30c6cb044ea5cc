"""`make run` starts the same long-running processes as compose (deploy/Procfile)."""

from pathlib import Path

from servicekit.localsystem import compose_processes

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_the_procfile_runs_every_long_running_process_of_compose():
    procfile = {}
    for line in (DEPLOY / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            argv = command.split()
            procfile[name.strip()] = argv[: argv.index("--port")] if "--port" in argv else argv
    compose = {
        name: ["nighttalk", *spec.argv[1:]]
        for name, spec in compose_processes(DEPLOY / "compose.yaml").items()
        if not spec.one_shot
    }
    assert procfile == compose
