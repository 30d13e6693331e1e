"""The MLflow UI in a real browser: start `mlflow ui` on 127.0.0.1:<free port> over a project's
store, open the experiment's runs table in headless Chromium (Debian's `chromium`), check that the
rendered page lists each pipeline's row (`evaluate@<pipeline>`) with its params (under params.yaml
keys), scores, dataset and registered model, and save a screenshot.

The table's columns come from the shared view `gancore ui` also saves
(gancore.tracking.mlflow_view): the evaluate rows sorted by --score, with the --columns chosen.

    .venv/bin/python scripts/mlflow_browser_check.py --store mlflow.db --experiment gancore \
        --pipelines fastgan wavelet --screenshot docs/mlflow_runs.png

Exit 0 when every check passes; otherwise each failed check is printed and the exit status is 1.
Needs `apt-get install chromium`; not part of the suite (CI has no browser).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from gancore.tracking.mlflow_view import COLUMNS, save_pipelines_view

CHROMIUM = "/usr/bin/chromium"
WINDOW_PX = (2600, 900)
"""Browser window (width, height): wide enough for the runs table's Dataset and Models columns."""
RENDER_MS = 20000
"""Virtual time Chromium gives the page's scripts before it dumps or shoots (the UI loads
lazily)."""


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ui(store: Path, port: int, log: Path) -> subprocess.Popen:
    """`mlflow ui` over `store` on 127.0.0.1:`port` (one worker, no job runner), once it answers."""
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        f"sqlite:///{store.resolve()}",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow ui exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return proc
        except OSError:
            time.sleep(1)
    proc.terminate()
    raise RuntimeError(f"mlflow ui did not answer within 120 s: {log.read_text()[-2000:]}")


def chromium(url: str, *args: str) -> str:
    """Run headless Chromium on `url` with `args` (e.g. --dump-dom); return its stdout."""
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={WINDOW_PX[0]},{WINDOW_PX[1]}",
            f"--virtual-time-budget={RENDER_MS}",
            *args,
            url,
        ]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=180).stdout


def store_checks(store: Path, experiment: str, pipelines: list[str]) -> tuple[str, list[str]]:
    """(experiment id, failed checks) of the rows as the UI's API serves them."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{store.resolve()}"
    client, failed = MlflowClient(uri, registry_uri=uri), []
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return "", [f"no experiment {experiment!r} in {store}"]
    if exp.tags.get("mlflow.experimentKind") != "custom_model_development":
        failed.append("the experiment does not open in the model-training view")
    for name in pipelines:
        rows = client.search_runs(
            [exp.experiment_id], f"tags.dvc_stage = 'evaluate@{name}'", max_results=1
        )
        if not rows:
            failed.append(f"no evaluate@{name} run")
            continue
        row = rows[0].data
        keyed = any(k.startswith(("method.", "twostage.")) for k in row.params)
        if "kid_el0" not in row.metrics or not keyed:
            failed.append(f"evaluate@{name} lacks kid_el0 or params under params.yaml keys")
        if not client.search_model_versions(f"name = '{name}'"):
            failed.append(f"no registered model {name!r}")
    return exp.experiment_id, failed


def page_checks(dom: str, pipelines: list[str], score: str, columns: list[str]) -> list[str]:
    """Failed checks of the rendered runs table: each row, the score and param columns, a dataset
    and each pipeline's registered model shown."""
    failed = [
        f"evaluate@{name} not in the runs table"
        for name in pipelines
        if f"evaluate@{name}" not in dom
    ]
    failed += [f"column {c} not shown" for c in [score, *columns] if c not in dom]
    if "shards (" not in dom:
        failed.append("no dataset shown in the runs table")
    failed += [
        f"registered model {name} not shown" for name in pipelines if f"/models/{name}/" not in dom
    ]
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", required=True, help="the project's mlflow.db")
    parser.add_argument("--experiment", default="gancore")
    parser.add_argument(
        "--pipelines", nargs="+", required=True, help="pipelines whose rows must show"
    )
    parser.add_argument("--screenshot", required=True, help="PNG path")
    parser.add_argument("--score", default="kid_el0", help="score column the rows are sorted by")
    parser.add_argument(
        "--columns",
        nargs="*",
        default=list(COLUMNS),
        help="params (params.yaml keys) shown as columns",
    )
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).is_file():
        print(f"{CHROMIUM} is missing: apt-get install chromium", file=sys.stderr)
        return 1
    exp_id, failed = store_checks(Path(args.store), args.experiment, args.pipelines)
    if not exp_id:
        print("\n".join(failed), file=sys.stderr)
        return 1
    uri = f"sqlite:///{Path(args.store).resolve()}"
    view = save_pipelines_view(uri, args.experiment, args.score, args.columns)
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="mlflow-ui-")) / "ui.log"
    proc = start_ui(Path(args.store), port, log)
    try:
        url = f"http://127.0.0.1:{port}/{view}"
        failed += page_checks(chromium(url, "--dump-dom"), args.pipelines, args.score, args.columns)
        Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
        chromium(url, f"--screenshot={Path(args.screenshot).resolve()}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    for line in failed:
        print(f"FAILED: {line}", file=sys.stderr)
    print(
        f"{len(args.pipelines)} pipelines checked, {len(failed)} failed; "
        f"screenshot {args.screenshot}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
