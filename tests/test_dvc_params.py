"""Each DVC stage's script reads exactly the params its dvc.yaml stage declares (foreach expanded).

DVC reruns a stage only when a declared param changes, so a script reading an undeclared key would
silently go stale. Stage scripts get their params only through `load_params(path, declared)`, which
returns nothing else; this test ties `declared` to dvc.yaml, as DVC itself parses it.
"""

from __future__ import annotations

import ast
import importlib
import shlex
from pathlib import Path

import pytest
from dvc.dependency.param import ParamsDependency
from dvc.repo import Repo

from gancore.config import load_params
from gancore.utils.threads import THREADS_KEY

ROOT = Path(__file__).resolve().parents[1]


def _dvc_stages() -> dict[str, tuple[list[str], list[str]]]:
    """{stage name: (declared params, command argv)} from dvc.yaml with foreach expanded."""
    with Repo(str(ROOT)) as repo:
        return {s.name: ([p for d in s.deps if isinstance(d, ParamsDependency) for p in d.params],
                         shlex.split(s.cmd)) for s in repo.index.stages}


STAGES = _dvc_stages()


def _script_params(argv: list[str]) -> tuple[str, list[str]]:
    """The stage module a command runs and the params keys it asks load_params for."""
    assert argv[:3] == ["python", "-m", argv[2]] and argv[2].startswith("stages.")
    module = importlib.import_module(argv[2])
    if hasattr(module, "params_for"):
        names = module.PARAMS_ARG if isinstance(module.PARAMS_ARG, tuple) else (module.PARAMS_ARG,)
        return argv[2], module.params_for(*[argv[argv.index(a) + 1] for a in names if a in argv])
    return argv[2], module.PARAMS


def test_pipeline_has_the_expected_stages():
    assert {"builtin", "shard", "ref_stats", "train@fastgan", "evaluate@fastgan"} <= set(STAGES)
    for pipeline in ("wavelet", "pixel", "autoencoder"):
        assert {f"{s}@{pipeline}" for s in ("compress", "train_sampler", "train_decoder", "assemble",
                                            "evaluate")} <= set(STAGES)


def _graph():
    with Repo(str(ROOT)) as repo:
        return repo.index.graph, {s.name: s for s in repo.index.stages}


@pytest.mark.parametrize("pipeline", ["wavelet", "pixel", "autoencoder"])
def test_sampler_and_decoder_are_siblings_and_decoder_params_stay_downstream(pipeline):
    """Both depend on compress, neither on the other; a decoder param reruns only its descendants."""
    import networkx as nx

    graph, stages = _graph()
    sampler, decoder = stages[f"train_sampler@{pipeline}"], stages[f"train_decoder@{pipeline}"]
    # DVC's graph points from a stage to the stages it depends on.
    assert not nx.has_path(graph, sampler, decoder) and not nx.has_path(graph, decoder, sampler)
    assert stages[f"compress@{pipeline}"] in nx.descendants(graph, sampler) & nx.descendants(graph, decoder)
    key = f"twostage.{pipeline}.decoder"
    assert [n for n, (declared, _) in STAGES.items() if key in declared] == [f"train_decoder@{pipeline}"]
    downstream = {s.name for s in nx.ancestors(graph, decoder)}
    assert downstream == {f"assemble@{pipeline}", f"evaluate@{pipeline}", "compare"}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_script_reads_exactly_the_declared_params(name):
    declared, argv = STAGES[name]
    _, read = _script_params(argv)
    read = [*read, THREADS_KEY]  # every stage reads it in run_main (torch's threads)
    assert sorted(read) == sorted(declared)
    loaded = load_params(ROOT / "params.yaml", read)
    assert sorted(loaded) == sorted(declared)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_script_has_no_other_way_to_params(name):
    """One load_params call, on the declared list; no YAML reading of its own."""
    module_name, _ = _script_params(STAGES[name][1])
    path = ROOT / (module_name.replace(".", "/") + ".py")
    tree = ast.parse(path.read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in n.names} | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "yaml" not in imported and "dvc.api" not in imported
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and getattr(n.func, "id", getattr(n.func, "attr", "")) == "load_params"]
    assert len(calls) == 1
    declared_arg = ast.unparse(calls[0].args[1])
    assert declared_arg in ("PARAMS", "params_for(args.method)", "params_for(args.pipeline)",
                            "params_for(args.method, args.pipeline)")


def test_load_params_returns_only_declared_sections():
    loaded = load_params(ROOT / "params.yaml", ["base.seed", "builtin"])
    assert set(loaded) == {"base.seed", "builtin"}
    with pytest.raises(KeyError):
        loaded["train"]
