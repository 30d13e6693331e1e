"""Hostile generator and codec folders: escaping names, links, FIFOs, pickles, huge configs."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.harness import in_child
from gancore.cli import main as gancore_main
from gancore.errors import DataError, GancoreError
from gancore.generator import load_generator, save_generator
from gancore.params import validate
from gancore.registry import get_method

CAP_GB = 6.0
"""Address-space cap of the child loading a folder that asks for a huge network."""


def _tiny_folder(out: Path, width_mult: float = 0.015625) -> Path:
    cfg = validate({"method": {"fastgan": {"width_mult": width_mult, "z_dim": 8}}})["method"][
        "fastgan"
    ]
    torch.manual_seed(0)
    G = get_method("fastgan").build_networks(cfg, 64)["G"]
    return save_generator(out, "fastgan", cfg, 64, {"G_ema": G, "G_init": G}, 0, 0)


@pytest.fixture
def gen(tmp_path) -> Path:
    return _tiny_folder(tmp_path / "gen")


def _edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    code = gancore_main(argv)
    return code, capsys.readouterr().err.strip()


def test_a_good_folder_still_loads(gen):
    G = load_generator(gen)
    assert G(torch.zeros(1, G.z_dim)).shape == (1, 3, 64, 64)


@pytest.mark.parametrize(
    "main, words",
    [
        ("../../secret", "not a plain file name"),
        ("/etc/hostname", "not a plain file name"),
        ("sub/G_ema", "not a plain file name"),
        ("..", "missing"),
        ("", "missing"),
    ],
)
def test_main_naming_a_file_outside_is_refused(gen, tmp_path, capsys, main, words):
    (tmp_path.parent / "secret.safetensors").write_bytes(b"not for you")
    _edit_config(gen, main=main)
    code, err = _cli(
        ["generate", "--generator", str(gen), "--n", "1", "--out", str(tmp_path / "o.png")], capsys
    )
    assert code == 2 and words in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o.png").exists()


def test_which_from_the_command_line_cannot_escape(gen, tmp_path, capsys):
    code, err = _cli(
        [
            "generate",
            "--generator",
            str(gen),
            "--which",
            "../gen/G_ema",
            "--out",
            str(tmp_path / "o.png"),
        ],
        capsys,
    )
    assert code == 2 and "not a plain file name" in err


def test_weights_linking_outside_are_refused(gen, tmp_path):
    outside = _tiny_folder(tmp_path / "other") / "G_ema.safetensors"
    (gen / "G_ema.safetensors").unlink()
    (gen / "G_ema.safetensors").symlink_to(outside)
    with pytest.raises(DataError, match="links outside the folder"):
        load_generator(gen)


def test_fifo_as_weights_is_refused_without_waiting(gen, tmp_path):
    (gen / "G_ema.safetensors").unlink()
    os.mkfifo(gen / "G_ema.safetensors")
    proc = subprocess.run(  # before the fix this blocks forever on open()
        [
            sys.executable,
            "-m",
            "gancore.cli",
            "generate",
            "--generator",
            str(gen),
            "--n",
            "1",
            "--out",
            str(tmp_path / "o.png"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 2, proc.stderr
    assert "not a regular file" in proc.stderr and "Traceback" not in proc.stderr


def test_pickle_as_weights_never_runs_and_is_a_clear_error(gen, tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (gen / "G_ema.safetensors").write_bytes(pickle.dumps(Boom()))
    code, err = _cli(
        ["generate", "--generator", str(gen), "--out", str(tmp_path / "o.png")], capsys
    )
    assert code == 2 and "is not a safetensors file" in err
    assert not marker.exists()


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda g: _edit_config(g, method="nosuchgan"), "unknown method"),
        (lambda g: (g / "config.json").write_text("{broken"), "not valid JSON"),
        (lambda g: (g / "config.json").write_text("[1, 2]"), "not a JSON object"),
        (lambda g: _edit_config(g, main=7), "main must be a str"),
        (lambda g: _edit_config(g, resolution=2**40), "resolution"),
        (lambda g: _edit_config(g, method_config=[]), "method_config must be a dict"),
        (lambda g: _edit_config(g, method_config={"width_mult": 4096}), "width_mult"),
        (lambda g: _edit_config(g, method_config={"width_mult": float("inf")}), "width_mult"),
    ],
)
def test_bad_config_is_a_typed_refusal(gen, edit, words):
    edit(gen)
    with pytest.raises(GancoreError, match=words):
        load_generator(gen)


def load_wide(folder: str) -> dict:
    """Child: load a folder whose config asks for a network 128x wider than its weights."""
    try:
        load_generator(folder)
    except DataError as e:
        return {"error": str(e)}
    return {"error": None}


def test_config_larger_than_weights_fails_before_allocation(gen):
    _edit_config(
        gen,
        method_config={
            **json.loads((gen / "config.json").read_text())["method_config"],
            "width_mult": 2.0,
        },
    )
    baseline = in_child(
        load_generator_ok, {"folder": str(_tiny_folder(gen.parent / "ok"))}, max_gb=CAP_GB
    )["peak_mem_gb"]
    out = in_child(load_wide, {"folder": str(gen)}, max_gb=CAP_GB)
    assert "does not fit the network" in out["error"]
    assert out["peak_mem_gb"] < baseline + 0.1, (out["peak_mem_gb"], baseline)


def load_generator_ok(folder: str) -> dict:
    """Child: load a good folder (the memory baseline)."""
    load_generator(folder)
    return {}


def test_codec_weights_linking_outside_are_refused(tmp_path):
    from gancore.compress.codec import WEIGHT_FILES, _load_weights, build_codec
    from gancore.compress.config import CompressParams

    codec = build_codec(CompressParams(method="autoencoder", channels=3), 32, [0.0] * 3, [1.0] * 3)
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes(b"x")
    folder = tmp_path / "codec"
    folder.mkdir()
    (folder / WEIGHT_FILES["G_ema"]).symlink_to(outside)
    with pytest.raises(DataError, match="links outside the folder"):
        _load_weights(codec, folder, "G_ema")


@pytest.mark.parametrize(
    "plant, words",
    [
        (lambda f, out: f.symlink_to(out), "not a codec folder"),
        (lambda f, out: os.mkfifo(f), "not a codec folder"),
        (lambda f, out: f.write_text("{broken"), "not valid JSON"),
        (lambda f, out: f.write_text('{"format": "gancore.codec/1"}'), "codec"),
    ],
    ids=["link_outside", "fifo", "broken_json", "missing_fields"],
)
def test_codec_json_that_escapes_blocks_or_breaks_is_refused(tmp_path, plant, words):
    from gancore.compress.codec import FORMAT, load_codec

    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"format": FORMAT}))
    folder = tmp_path / "codec"
    folder.mkdir()
    plant(folder / "codec.json", outside)
    with pytest.raises(DataError, match=words):
        load_codec(folder)


def test_a_two_stage_part_linking_outside_is_refused(gen, tmp_path):
    from gancore.generator import FORMAT

    folder = tmp_path / "assembled"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({"format": FORMAT, "kind": "twostage", "main": "G_ema"})
    )
    (folder / "sampler").symlink_to(gen, target_is_directory=True)
    with pytest.raises(DataError, match="sampler links outside the folder"):
        load_generator(folder)
