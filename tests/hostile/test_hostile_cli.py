"""Every `gancore` subcommand and stage CLI, driven with a table of bad arguments: each must exit 2
with one line on stderr, and never a traceback. Run in-process (the same main() the console script
and `python -m stages.X` run); one case also as a real process."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from tiny import ROOT, tiny_params

from gancore.cli import main as gancore_main

STAGES = (
    "assemble",
    "builtin",
    "compare",
    "compress",
    "evaluate",
    "ref_stats",
    "shard",
    "train",
    "train_decoder",
    "train_inr",
)


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict[str, Path]:
    """Good and hostile params files and paths, made once."""
    tmp = tmp_path_factory.mktemp("cli")
    good = tiny_params(tmp)
    p = yaml.safe_load(good.read_text())
    p["track"]["enabled"] = False
    good.write_text(yaml.safe_dump(p))
    files = {"good": good, "tmp": tmp, "missing": tmp / "nope.yaml", "dir": tmp / "adir"}
    files["dir"].mkdir()
    texts = {
        "syntax": "train: [unclosed\n",
        "list": "- a\n- b\n",
        "alias": "a: &a [1, 2]\ntrain:\n  device: *a\n",
        "dup": "train: {}\ntrain: {}\n",
        "inf": good.read_text().replace("total_kimg: 0.016", "total_kimg: .inf", 1),
    }
    for name, text in texts.items():
        files[name] = tmp / f"{name}.yaml"
        files[name].write_text(text)
    files["utf"] = tmp / "utf.yaml"
    files["utf"].write_bytes(b"train:\n  device: \xff\n")
    nosrc = dict(p, data={"source": str(tmp / "no_images")})
    files["nosrc"] = tmp / "nosrc.yaml"
    files["nosrc"].write_text(yaml.safe_dump(nosrc))
    return files


def _gancore_cases():
    cases = [
        ([], "required"),
        (["nosuch"], "invalid choice"),
        (["methods", "--x"], "unrecognized"),
        (["generate", "--out", "o.png"], "--generator"),
        (["generate", "--generator", "{missing}", "--out", "o.png"], "not a gancore generator"),
        (["generate", "--generator", "{good}", "--out", "o.png"], "not a gancore generator"),
        (
            ["generate", "--generator", "{tmp}", "--which", "../x", "--out", "o.png"],
            "not a gancore generator",
        ),
        (["ui", "--port", "0"], "outside [1, 65535]"),
        (["ui", "--port", "http"], "not an integer"),
    ]
    gen = ["generate", "--generator", "{tmp}", "--out", "o.png"]
    for flag, value, words in [
        ("--n", "0", "outside"),
        ("--n", "-5", "outside"),
        ("--n", "x", "not an integer"),
        ("--n", str(10**30), "outside"),
        ("--batch", "0", "outside"),
        ("--seed", "-1", "outside"),
        ("--seed", str(2**80), "outside"),
        ("--device", "tpu", "not"),
        ("--device", "cuda:99", "not available"),
        ("--resolution", "0", "outside"),
        ("--tile-px", "0", "outside"),
        ("--extent", "inf", "outside"),
        ("--extent", "nan", "outside"),
        ("--extent", "-1", "outside"),
    ]:
        cases.append(([*gen, flag, value], words))
    if not torch.cuda.is_available():
        cases.append(([*gen, "--device", "cuda"], "not available"))
    for name, words in [
        ("missing", "not found"),
        ("dir", "not found"),
        ("syntax", "not valid YAML"),
        ("list", "must be a mapping"),
        ("alias", "aliases"),
        ("dup", "duplicate key"),
        ("utf", "cannot read"),
        ("inf", "must be a finite number"),
    ]:
        cases.append((["params", f"{{{name}}}"], words))
    return cases


def _fill(argv: list[str], bad: dict[str, Path]) -> list[str]:
    return [a.format(**{k: str(v) for k, v in bad.items()}) for a in argv]


def _assert_one_clear_line(code, err: str, words: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert words in err, err


@pytest.mark.parametrize(
    "argv, words", _gancore_cases(), ids=lambda v: " ".join(v)[:60] if isinstance(v, list) else None
)
def test_gancore_bad_arguments_exit_2_with_one_line(argv, words, bad, capsys, monkeypatch):
    monkeypatch.chdir(bad["tmp"])
    try:
        code = gancore_main(_fill(argv, bad))
    except SystemExit as e:  # argparse
        code = e.code
    _assert_one_clear_line(code, capsys.readouterr().err, words)


TRAIN_ARGS = [
    "--out={tmp}/out",
    "--metrics={tmp}/m.json",
    "--curve={tmp}/c.csv",
    "--ckpt-root={tmp}/ckpt",
]
REQUIRED = {
    "assemble": [
        "--pipeline",
        "wavelet",
        "--sampler",
        "s",
        "--decoder",
        "d",
        "--codes",
        "c",
        "--out",
        "{tmp}/o",
    ],
    "compare": ["--out", "{tmp}/o"],
    "compress": ["--pipeline", "wavelet", "--out", "{tmp}/o", "--metrics", "{tmp}/m.json"],
    "evaluate": ["--generator", "g", "--out", "{tmp}/o", "--metrics", "{tmp}/m.json"],
    "train": ["--method", "fastgan", *TRAIN_ARGS],
    "train_decoder": ["--pipeline", "wavelet", "--codec", "c", *TRAIN_ARGS],
    "train_inr": ["--stage", "1", *TRAIN_ARGS],
}
"""The arguments each stage requires besides --params (pointing at nothing real)."""


def _stage_cases():
    cases = []
    for stage in STAGES:  # every stage: params that cannot be read or validated
        for name, words in [
            ("missing", "not found"),
            ("syntax", "not valid YAML"),
            ("alias", "aliases"),
            ("dup", "duplicate"),
            ("inf", "finite"),
        ]:
            cases.append((stage, ["--params", f"{{{name}}}", *REQUIRED.get(stage, [])], words))
    train_args = TRAIN_ARGS
    cases += [
        ("train", ["--params", "{good}", "--method", "nosuchgan", *train_args], "nosuchgan"),
        (
            "train",
            ["--params", "{good}", "--method", "fastgan", "--shards", "{tmp}/none", *train_args],
            "shard folder not found",
        ),
        ("train_inr", ["--params", "{good}", "--stage", "0", *train_args], "outside [1, 16]"),
        ("train_inr", ["--params", "{good}", "--stage", "x", *train_args], "not an integer"),
        (
            "train_decoder",
            ["--params", "{good}", "--pipeline", "nosuch", "--codec", "{tmp}", *train_args],
            "nosuch",
        ),
        (
            "train_decoder",
            [
                "--params",
                "{good}",
                "--pipeline",
                "wavelet",
                "--codec",
                "{tmp}/none",
                "--shards",
                "{tmp}/none",
                *train_args,
            ],
            "shard folder not found",
        ),
        (
            "compress",
            [
                "--params",
                "{good}",
                "--pipeline",
                "nosuch",
                "--out",
                "{tmp}/o",
                "--metrics",
                "{tmp}/m.json",
            ],
            "nosuch",
        ),
        (
            "evaluate",
            [
                "--params",
                "{good}",
                "--generator",
                "{tmp}/none",
                "--ref",
                "{tmp}/none",
                "--out",
                "{tmp}/o",
                "--metrics",
                "{tmp}/m.json",
            ],
            "no reference statistics",
        ),
        (
            "assemble",
            [
                "--params",
                "{good}",
                "--pipeline",
                "wavelet",
                "--sampler",
                "{tmp}/none",
                "--decoder",
                "{tmp}/none",
                "--codes",
                "{tmp}/none",
                "--out",
                "{tmp}/o",
            ],
            "shard folder not found",
        ),
        (
            "shard",
            ["--params", "{nosrc}", "--out", "{tmp}/s", "--metrics", "{tmp}/m.json"],
            "image source not found",
        ),
        (
            "ref_stats",
            ["--params", "{good}", "--shards", "{tmp}/none", "--out", "{tmp}/r"],
            "shard folder not found",
        ),
        ("compare", ["--params", "{good}"], "--out"),
        ("train", ["--params", "{good}"], "--method"),
    ]
    return cases


@pytest.mark.parametrize(
    "stage, argv, words",
    _stage_cases(),
    ids=lambda v: v if isinstance(v, str) and " " not in v else None,
)
def test_stage_bad_arguments_exit_2_with_one_line(stage, argv, words, bad, capsys):
    from gancore.stage.runtime import run_main

    main = importlib.import_module(f"stages.{stage}").main
    with pytest.raises(SystemExit) as info:
        run_main(main, _fill(argv, bad))
    _assert_one_clear_line(info.value.code, capsys.readouterr().err, words)


def test_a_real_process_prints_one_line_and_exits_2(bad):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stages.train",
            "--params",
            str(bad["alias"]),
            "--method",
            "fastgan",
            "--out",
            "o",
            "--ckpt-root",
            "c",
            "--metrics",
            "m",
            "--curve",
            "c.csv",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "aliases" in proc.stderr
