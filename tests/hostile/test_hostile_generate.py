"""Hostile `gancore generate` / `interpolate` sizes: seed lists counted before they are expanded,
folders written batch by batch, and one-file outputs (grids, walks) capped in pixels and frames,
each refused with exit 2 and one line naming the option."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from tiny import tiny_generator

import gancore.generator
from gancore.cli import MAX_SEEDS, main


@pytest.fixture(scope="module")
def gen(tmp_path_factory) -> Path:
    return tiny_generator(tmp_path_factory.mktemp("gen") / "gen")


def _refused(argv: list[str], capsys) -> str:
    """Run `gancore argv`, expecting exit 2 within seconds and one line on stderr."""
    started = time.perf_counter()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own usage errors
        code = e.code
    seconds = time.perf_counter() - started
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert seconds < 10, seconds
    return err


MANY_RANGES = ",".join(f"{i * 10**6}-{i * 10**6 + 999_998}" for i in range(200))
"""200 ranges of 999,999 seeds (each under the old per-range cap): 200 M seeds, in 3.7 KB."""


@pytest.mark.parametrize("command", ["generate", "interpolate"])
def test_200_comma_joined_large_ranges_are_refused_at_once(gen, tmp_path, capsys, command):
    out = tmp_path / ("walk.gif" if command == "interpolate" else "folder")
    argv = [command, "--generator", str(gen), "--seeds", MANY_RANGES, "--out", str(out)]
    err = _refused(argv, capsys)
    assert "--seeds" in err and f"{200 * 999_999} seeds in all, at most {MAX_SEEDS}" in err, err


def _count_files_at_each_forward(monkeypatch, folder: Path) -> list[int]:
    """The number of PNG files in `folder` each time the loaded generator runs."""
    counts: list[int] = []
    load = gancore.generator.load_generator

    def counting_load(*args, **kwargs):
        G = load(*args, **kwargs)
        G.register_forward_hook(lambda *_: counts.append(len(list(folder.glob("*.png")))))
        return G

    monkeypatch.setattr(gancore.generator, "load_generator", counting_load)
    return counts


@pytest.mark.parametrize(
    "draw, forwards",
    [(["--n", "6"], [0, 2, 4]), (["--seeds", "0-5"], [0, 0, 2, 2, 4, 4])],
    ids=["n", "seeds"],
)
def test_a_folder_is_written_batch_by_batch(gen, tmp_path, monkeypatch, draw, forwards):
    """Batches of 2: before each forward pass, every earlier batch is on disk already (--seeds
    runs one forward pass per seed)."""
    out = tmp_path / "samples"
    counts = _count_files_at_each_forward(monkeypatch, out)
    assert (
        main(["generate", "--generator", str(gen), *draw, "--batch", "2", "--out", str(out)]) == 0
    )
    assert counts == forwards
    assert len(list(out.glob("*.png"))) == 6


def test_a_grid_over_the_pixel_limit_is_refused_after_one_batch(gen, tmp_path, monkeypatch, capsys):
    """40,000 images of 64 px: a 174 Mpx grid."""
    out = tmp_path / "grid.png"
    counts = _count_files_at_each_forward(monkeypatch, tmp_path)
    err = _refused(["generate", "--generator", str(gen), "--n", "40000", "--out", str(out)], capsys)
    assert "--n: a grid of 40000 images" in err and "Mpx limit of one file" in err, err
    assert len(counts) == 1 and not out.exists()


def test_a_walk_over_the_frame_limit_is_refused_before_any_latent(gen, tmp_path, capsys):
    argv = ["interpolate", "--generator", str(gen), "--seeds", "0-999"]
    argv += ["--frames-per-step", "10000", "--out", str(tmp_path / "walk.gif")]
    err = _refused(argv, capsys)
    assert "--seeds/--frames-per-step: 10000000 frames" in err, err


def test_a_walk_over_the_pixel_limit_is_refused_after_one_frame(tmp_path, capsys):
    """9,000 frames of 128 px: 147 Mpx in one GIF."""
    gen128 = tiny_generator(tmp_path / "gen128", resolution=128)
    argv = ["interpolate", "--generator", str(gen128), "--seeds", "0-8"]
    argv += ["--frames-per-step", "1000", "--out", str(tmp_path / "walk.gif")]
    err = _refused(argv, capsys)
    assert "a walk of 9000 frames of 128x128 px is 147 Mpx" in err, err
    assert not (tmp_path / "walk.gif").exists()
