"""Each DVC stage's script reads exactly the params its dvc.yaml stage declares (foreach expanded),
and dvc.yaml wires every registered pipeline, all of them after the validate stage.

DVC reruns a stage only when a declared param changes, so a script reading an undeclared key would
silently go stale. Stage scripts get their params only through `load_params(path, declared)`, which
returns nothing else; this test ties `declared` to dvc.yaml, as DVC itself parses it, for the full
comparison's `pipelines` selection (params.yaml's default is the quick path, a subset).
"""

from __future__ import annotations

import ast
import importlib
import shlex
from dataclasses import fields
from pathlib import Path

import networkx as nx
import pytest
from dvc.dependency.param import ParamsDependency

from gancore.config import STAGED_METHODS, PlumbingParams
from gancore.params import load_params, read_yaml, validate
from gancore.registry import list_methods
from gancore.utils.threads import THREADS_KEY
from tests.dvcproject import LAUNCHER, ROOT, full_project, stage_graph

GRAPH, FULL = full_project()


def _declared(stage) -> list[str]:
    return [p for d in stage.deps if isinstance(d, ParamsDependency) for p in d.params]


STAGES = {name: (_declared(s), shlex.split(s.cmd)) for name, s in FULL.items()}
"""{stage name: (declared params, command argv)} of the full comparison."""


def _script_params(argv: list[str]) -> tuple[str, list[str]]:
    """The stage module a command runs and the params keys it asks load_params for."""
    assert argv[:3] == [LAUNCHER, "-m", argv[2]] and argv[2].startswith("stages.")
    module = importlib.import_module(argv[2])
    if hasattr(module, "params_for"):
        names = module.PARAMS_ARG if isinstance(module.PARAMS_ARG, tuple) else (module.PARAMS_ARG,)
        return argv[2], module.params_for(*[argv[argv.index(a) + 1] for a in names if a in argv])
    return argv[2], module.PARAMS


def test_pipeline_has_the_expected_stages():
    shared = {"validate", "builtin", "shard", "ref_stats", "train@fastgan", "evaluate@fastgan"}
    assert shared <= set(STAGES)
    for pipeline in ("wavelet", "pixel", "autoencoder"):
        assert {
            f"{s}@{pipeline}"
            for s in ("compress", "train_sampler", "train_decoder", "assemble", "evaluate")
        } <= set(STAGES)


def test_quick_path_is_the_default():
    """Plain `dvc repro` on params.yaml builds FastGAN alone (and the shared stages, compare)."""
    _, stages = stage_graph(ROOT)
    assert set(stages) == {
        "validate",
        "builtin",
        "shard",
        "ref_stats",
        "train@fastgan",
        "evaluate@fastgan",
        "compare",
    }


def test_every_registered_pipeline_is_wired():
    """The full selection (from the registry and params.yaml) gives every registered method and
    two-stage pipeline its stages, ending in evaluate@<name>, all before compare."""
    params = validate(read_yaml(ROOT / "params.yaml"))
    one_stage = [m for m in list_methods() if m not in STAGED_METHODS]
    expected = {f"train@{m}" for m in one_stage}
    for name in params["twostage"]:
        parts = ("compress", "train_sampler", "train_decoder", "assemble")
        expected |= {f"{s}@{name}" for s in parts}
    n_stages = params["method"]["inrpatch"].n_stages
    expected |= {f"train_inr@{k}" for k in range(1, n_stages + 1)}
    pipelines = [*one_stage, *params["twostage"], *STAGED_METHODS]
    expected |= {f"evaluate@{p}" for p in pipelines}
    assert expected <= set(FULL)
    assert {FULL[f"evaluate@{p}"] for p in pipelines} <= nx.descendants(GRAPH, FULL["compare"])
    for p in pipelines:  # each pipeline's evaluate runs after that pipeline's training
        upstream = {s.name for s in nx.descendants(GRAPH, FULL[f"evaluate@{p}"])}
        assert upstream & {f"train@{p}", f"assemble@{p}", f"train_inr@{n_stages}"}, p


def test_every_stage_runs_after_validate():
    """validate checks the whole params file; every other stage depends on its output, so a bad
    value stops DVC before it removes any stage's outputs."""
    assert STAGES["validate"][0] == [] and "params.yaml" in {
        d.def_path for d in FULL["validate"].deps if isinstance(d, ParamsDependency)
    }
    for name, stage in FULL.items():
        if name != "validate":
            assert "data/params.valid" in {d.def_path for d in stage.deps}, name


@pytest.mark.parametrize("pipeline", ["wavelet", "pixel", "autoencoder"])
def test_sampler_and_decoder_are_siblings_and_decoder_params_stay_downstream(pipeline):
    """Both depend on compress, neither on the other; a decoder param reruns only its
    descendants."""
    graph, stages = GRAPH, FULL
    sampler, decoder = stages[f"train_sampler@{pipeline}"], stages[f"train_decoder@{pipeline}"]
    # DVC's graph points from a stage to the stages it depends on.
    assert not nx.has_path(graph, sampler, decoder) and not nx.has_path(graph, decoder, sampler)
    assert stages[f"compress@{pipeline}"] in nx.descendants(graph, sampler) & nx.descendants(
        graph, decoder
    )
    key = f"twostage.{pipeline}.decoder"
    assert [n for n, (declared, _) in STAGES.items() if key in declared] == [
        f"train_decoder@{pipeline}"
    ]
    downstream = {s.name for s in nx.ancestors(graph, decoder)}
    assert downstream == {f"assemble@{pipeline}", f"evaluate@{pipeline}", "compare"}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_script_reads_exactly_the_declared_params(name):
    """(validate declares the whole file, which DVC lists as no keys, and reads it whole.)"""
    declared, argv = STAGES[name]
    _, read = _script_params(argv)
    if read:  # every stage but validate (which reads the whole file) also reads the thread setting
        read = [*read, THREADS_KEY]  # in run_main (torch's threads)
    assert sorted(read) == sorted(declared)
    loaded = load_params(ROOT / "params.yaml", read)
    assert sorted(loaded) == sorted(declared)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_script_has_no_other_way_to_params(name):
    """One load_params call, on the declared list; no YAML reading of its own."""
    module_name, _ = _script_params(STAGES[name][1])
    path = ROOT / (module_name.replace(".", "/") + ".py")
    tree = ast.parse(path.read_text())
    imported = {
        a.name
        for n in ast.walk(tree)
        if isinstance(n, (ast.Import, ast.ImportFrom))
        for a in n.names
    } | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "yaml" not in imported and "dvc.api" not in imported
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and getattr(n.func, "id", getattr(n.func, "attr", "")) == "load_params"
    ]
    assert len(calls) == 1
    declared_arg = ast.unparse(calls[0].args[1])
    assert declared_arg in (
        "PARAMS",
        "params_for(args.method)",
        "params_for(args.pipeline)",
        "params_for(args.method, args.pipeline)",
    )


@pytest.mark.parametrize("name", ["compress@wavelet", "train_decoder@wavelet"])
def test_dvc_tracks_every_key_of_a_declared_section(name):
    """A two-stage part declares `train.plumbing` whole: DVC reads it as one dict param holding
    every key of the section, so a change of any one of them reruns the stage."""
    deps = [d for d in FULL[name].deps if isinstance(d, ParamsDependency)]
    values = {k: v for d in deps for k, v in d.read_params().items()}
    assert sorted(values["train.plumbing"]) == sorted(f.name for f in fields(PlumbingParams))


def test_load_params_returns_only_declared_sections():
    loaded = load_params(ROOT / "params.yaml", ["base.seed", "builtin"])
    assert set(loaded) == {"base.seed", "builtin"}
    with pytest.raises(KeyError):
        loaded["train"]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_the_headline_files_are_the_only_metrics_and_every_split_file_has_its_info(name):
    """`dvc metrics show` / `dvc exp show` tabulate each evaluate stage's headline.json alone (100
    columns, issue 29 item 6); write_metrics splits every other metrics JSON into numbers and an
    info file, and DVC tracks both halves as outputs."""
    from gancore.utils.metrics_file import info_path

    outs = {o.def_path: o for o in FULL[name].outs}
    metrics = [p for p, o in outs.items() if o.metric]
    assert [Path(p).name for p in metrics] == (["headline.json"] if "evaluate@" in name else [])
    split = [
        p
        for p in outs
        if p.startswith("metrics/")
        and p.endswith(".json")
        and p not in metrics
        and not p.endswith(".info.json")
    ]
    for path in split:
        assert str(info_path(path)) in outs and not outs[str(info_path(path))].metric, path
