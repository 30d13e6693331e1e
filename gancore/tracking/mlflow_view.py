"""The runs table a person opens first: MLflow's shared view `pipelines` on the experiment.

MLflow keeps a runs table's columns in the browser, so a fresh browser shows none of the scores or
params among ~170. A shared view (the experiment tag `mlflow.sharedViewState.<key>`, opened with
`?viewStateShareKey=<key>`) carries them: the `evaluate@<pipeline>` rows, one per pipeline, sorted
by the score, with duration, dataset, registered model, the score at training end and at
initialisation, the compute and the chosen params (params.yaml keys). `gancore ui` saves it and
prints its address; scripts/mlflow_browser_check.py checks it in a real browser.
"""

from __future__ import annotations

import json

VIEW = "pipelines"
"""The shared view's key."""
COLUMNS = ("train.total_kimg", "method.fastgan.width_mult")
"""Params shown by default: the training length and the quick path's model width."""


def save_pipelines_view(
    tracking_uri: str,
    experiment: str,
    score: str = "kid_el0",
    columns: tuple[str, ...] | list[str] = COLUMNS,
) -> str | None:
    """Save the view on `experiment`; return the UI address to append to the server's
    (`#/experiments/<id>/runs?viewStateShareKey=pipelines`), or None when the store has no such
    experiment yet (nothing is created)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    shown = [f"attributes.`{a}`" for a in ("Duration", "Dataset", "Models")]
    shown += [f"metrics.`{m}`" for m in (score, f"init.{score}", "compute.device_hours")]
    state = {
        "selectedColumns": [*shown, *(f"params.`{c}`" for c in columns)],
        "searchFilter": "tags.dvc_stage LIKE 'evaluate@%'",
        "orderByKey": f"metrics.`{score}`",
        "orderByAsc": True,
    }
    client.set_experiment_tag(
        exp.experiment_id, f"mlflow.sharedViewState.{VIEW}", json.dumps(state)
    )
    return f"#/experiments/{exp.experiment_id}/runs?viewStateShareKey={VIEW}"
