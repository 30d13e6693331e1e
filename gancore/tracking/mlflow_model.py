"""Generator folders as MLflow models: a pyfunc whose input is seeds and output images.

The model's data is our generator folder (config.json + safetensors), loaded by this module
(`loader_module`), never by unpickling: MLflow's usual `python_model` is a cloudpickle, which runs
whatever code the pickle names. Before loading, a folder is checked to hold nothing but JSON and
safetensors files, so a model whose folder carries a pickle payload is refused, not executed.
`models:/<name>@<alias>` and `models:/<name>/<version>` URIs resolve to that folder for
`gancore generate`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from gancore.errors import DataError
from gancore.utils.fsio import parse_yaml, read_document

LOADER = "gancore.tracking.mlflow_model"
"""The `loader_module` every logged generator names in its MLmodel."""
SAFE_SUFFIXES = (".json", ".safetensors")
"""The only files a generator folder may hold (at any depth: a two-stage one has part folders)."""
MODEL_NAME = "generator"
"""The logged model's name in its run (its artifact folder)."""


def check_folder(path: str | Path) -> Path:
    """Refuse a generator folder holding any file but JSON and safetensors (e.g. a pickle).

    Raises:
        DataError: naming the first file that is not allowed, or a link.
    """
    path = Path(path)
    for item in sorted(path.rglob("*")):
        if item.is_symlink() or (item.is_file() and item.suffix not in SAFE_SUFFIXES):
            allowed = ", ".join(SAFE_SUFFIXES)
            raise DataError(
                f"{item} is not allowed in a generator folder (only {allowed} files; "
                "pickles and links are refused)"
            )
    return path


class GeneratorModel:
    """The pyfunc of a generator folder: a table of seeds -> one image per seed.

    Image i is `sample(G, 1, seed_i)`: the first image `gancore generate --seed <seed_i>` writes.
    """

    def __init__(self, folder: Path):
        from gancore.generator import load_generator

        self.G = load_generator(check_folder(folder))

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        """Args: a DataFrame with an integer column `seed`. Returns: (N, R, R, 3) uint8 numpy."""
        import numpy as np
        import torch

        from gancore.generator import sample

        seeds = [int(s) for s in model_input["seed"]]
        images = [sample(self.G, 1, seed) for seed in seeds]
        if not images:
            return np.zeros((0, self.G.resolution, self.G.resolution, 3), np.uint8)
        return torch.cat(images).permute(0, 2, 3, 1).numpy()


def _load_pyfunc(data_path: str) -> GeneratorModel:
    """MLflow's entry point for `loader_module`: the generator folder MLflow copied under data/."""
    return GeneratorModel(Path(data_path))


def signature(resolution: int) -> Any:
    """Input: column `seed` (long); output: uint8 images (N, R, R, 3)."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    images = TensorSpec(np.dtype(np.uint8), (-1, resolution, resolution, 3))
    return ModelSignature(inputs=Schema([ColSpec("long", "seed")]), outputs=Schema([images]))


def log_generator(
    tracking_uri: str, run_id: str, folder: str | Path, registered_name: str | None = None
) -> Any:
    """Log a generator folder as the MLflow model `generator` of run `run_id` (a LoggedModel holding
    the run's params and metrics), registered as a new version of `registered_name` when given.

    Returns:
        mlflow.models.model.ModelInfo (model_uri `models:/m-<id>`, registered_model_version).
    """
    import mlflow
    import torch
    from mlflow.models import Model

    import gancore
    from gancore.generator import read_config

    config = read_config(check_folder(folder))
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    # Made here, in the run's experiment: Model.log alone files it under the active (Default) one.
    client = mlflow.MlflowClient(tracking_uri)
    run = client.get_run(run_id)
    model = client.create_logged_model(
        run.info.experiment_id,
        name=MODEL_NAME,
        source_run_id=run_id,
        params=run.data.params,
        model_type="generator",
    )
    torch_pin = f"torch=={torch.__version__.split('+')[0]}"
    metadata = {"gancore_version": gancore.__version__, "kind": config.get("kind", "single")}
    return Model.log(
        artifact_path=None,
        name=MODEL_NAME,
        flavor=mlflow.pyfunc,
        run_id=run_id,
        model_id=model.model_id,
        loader_module=LOADER,
        data_path=str(folder),
        signature=signature(config["resolution"]),
        pip_requirements=[torch_pin, "safetensors"],
        metadata=metadata,
        registered_model_name=registered_name,
        await_registration_for=0,
    )


def is_model_uri(uri: str) -> bool:
    """Whether `uri` names an MLflow model rather than a folder."""
    return uri.startswith(("models:/", "runs:/"))


def generator_folder(
    uri: str, dst: str | Path | None = None, tracking_uri: str | None = None
) -> Path:
    """The generator folder inside a logged model (downloaded to `dst`, default a temp folder),
    checked.

    Raises:
        DataError: the model is not a gancore generator (another loader, a python_model pickle)
            or its folder holds files other than JSON and safetensors.
    """
    import mlflow

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    dst = Path(dst) if dst is not None else Path(tempfile.mkdtemp(prefix="gancore-model-"))
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))
    except Exception as e:  # unknown name, alias or version: MLflow's message says which
        raise DataError(f"{uri} does not resolve to a logged model: {e}") from None
    mlmodel = local / "MLmodel"
    flavor = (read_document(mlmodel, parse_yaml) if mlmodel.is_file() else {}) or {}
    pyfunc = flavor.get("flavors", {}).get("python_function", {})
    if pyfunc.get("loader_module") != LOADER or "data" not in pyfunc:
        raise DataError(
            f"{uri} is not a gancore generator model (its MLmodel does not load "
            f"through {LOADER}); refused without loading it"
        )
    return check_folder(local / pyfunc["data"])
