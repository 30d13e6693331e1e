"""A scheduled deployment picked up by a worker, on loopback: start a real Prefect server on
127.0.0.1:<free port> (temporary PREFECT_HOME), create a process work pool, deploy the pipeline flow
with a cron schedule (`gancore flow deploy`), check the scheduler created its scheduled runs,
trigger one run now (`run_deployment`, as `prefect deployment run` does), start a worker with
--run-once (`gancore flow worker`) and check that the run completed and ran the pipeline's
stages through DVC. The project is a toy dvc.yaml (`train@demo` -> `evaluate@demo`), so the demo
takes a minute or two, not a training.

    .venv/bin/python scripts/prefect_deployment_demo.py [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POOL = "demo-pool"
CRON = "*/5 * * * *"
TOY_DVC_YAML = """stages:
  train:
    foreach: [demo]
    do:
      cmd: python -c "open('model.txt', 'w').write('trained')"
      outs: [model.txt]
  evaluate:
    foreach: [demo]
    do:
      cmd: python -c "open('score.txt', 'w').write(open('model.txt').read() + ' and scored')"
      deps: [model.txt]
      outs: [score.txt]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, ready, timeout_sec: float, every_sec: float = 1.0):
    """Poll `ready()` until it returns something truthy; fail naming `what` after `timeout_sec`."""
    deadline = time.time() + timeout_sec
    while time.time() < deadline:
        value = ready()
        if value:
            return value
        time.sleep(every_sec)
    raise SystemExit(f"timed out after {timeout_sec:.0f} s waiting for {what}")


def healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def sh(env: dict[str, str], *args: str, timeout_sec: float = 300) -> str:
    """Run a command of the demo, echo it, fail loudly with its output."""
    print("$", " ".join(args), flush=True)
    done = subprocess.run(
        args,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout_sec,
    )
    if done.returncode != 0:
        raise SystemExit(f"{args[:4]} exited {done.returncode}:\n{done.stdout[-3000:]}")
    return done.stdout


def toy_project(folder: Path) -> Path:
    folder.mkdir()
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=folder, check=True)
    (folder / "dvc.yaml").write_text(TOY_DVC_YAML)
    return folder


def runs_in(deployment: str, state_name: str | None = None) -> list:
    """The flow runs of a deployment ("flow/deployment"), all or those in one state, from the
    API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name(deployment)
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id]))
        )
    return [r for r in runs if state_name in (None, r.state_name)]


def demo(tmp: Path) -> None:
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp / "prefect_home"),
        "PREFECT_API_URL": api_url,
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    os.environ.update(env)  # this process's API client talks to the same server
    project = toy_project(tmp / "project")
    t0 = time.time()
    log = open(tmp / "server.log", "w")  # noqa: SIM115 (the server writes it until stopped)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until("the Prefect server", lambda: healthy(api_url), timeout_sec=120)
        print(f"server ready on {api_url} after {time.time() - t0:.1f} s", flush=True)
        sh(env, sys.executable, "-m", "prefect", "work-pool", "create", POOL, "--type", "process")
        sh(
            env,
            sys.executable,
            "-m",
            "gancore.cli",
            "flow",
            "deploy",
            "demo",
            "--project",
            str(project),
            "--pool",
            POOL,
            "--cron",
            CRON,
        )
        deployment = "gancore-pipeline/demo"
        scheduled = wait_until(
            "scheduled runs from the cron schedule",
            lambda: runs_in(deployment, "Scheduled"),
            timeout_sec=60,
            every_sec=2,
        )
        print(
            f"cron {CRON!r}: {len(scheduled)} scheduled runs, the next at "
            f"{min(r.expected_start_time for r in scheduled)}",
            flush=True,
        )
        from prefect.deployments import run_deployment

        adhoc = run_deployment(deployment, timeout=0)  # like `prefect deployment run`, not waiting
        print(f"triggered flow run {adhoc.id} now (besides the cron runs)", flush=True)
        t1 = time.time()
        sh(
            env,
            sys.executable,
            "-m",
            "gancore.cli",
            "flow",
            "worker",
            "--pool",
            POOL,
            "--run-once",
            timeout_sec=300,
        )
        done = runs_in(deployment, "Completed")
        score = (project / "score.txt").read_text() if (project / "score.txt").is_file() else None
        states = sorted(r.state_name for r in runs_in(deployment))
        if (
            adhoc.id not in {r.id for r in done}
            or score != "trained and scored"
            or "Failed" in states
        ):
            raise SystemExit(
                f"the worker did not complete the run: flow runs {states}, score.txt {score!r}"
            )
        print(
            f"worker ran flow run {adhoc.id} to Completed in {time.time() - t1:.1f} s "
            f"({len(done) - 1} cron run(s) due meanwhile also Completed); score.txt: {score!r}; "
            f"demo took {time.time() - t0:.1f} s",
            flush=True,
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary folder (server log, project)"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="prefect_demo_"))
    try:
        demo(tmp)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
