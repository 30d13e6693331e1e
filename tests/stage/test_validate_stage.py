"""The validate stage (issue 29): data.source must exist and be readable before any stage runs
(the builtin stage's output excepted: it is made before shard reads it), and a value that `dvc exp
run -S` wrote and validate rejects is undone byte for byte, the rejected file kept, while a hand
edit is never undone. DVC's own -S writer (dvc.utils.hydra.apply_overrides) makes the files."""

from __future__ import annotations

import io
import re
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
from dvc.utils.hydra import apply_overrides

from gancore.errors import ConfigError
from gancore.params import BUILTIN_SOURCE, check_source
from stages import validate
from tests.dvcproject import ROOT, dvc_env

MARKER = "data/params.valid"


def _archive(path: Path) -> Path:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("a.png", b"not read here")
    else:
        with tarfile.open(path, "w:gz") as t:
            t.addfile(tarfile.TarInfo("a.png"), io.BytesIO(b""))
    return path


@pytest.mark.parametrize(
    "make, error",
    [
        (lambda d: d / "photos", "does not exist"),
        (lambda d: Path("/nonexistent"), "does not exist"),
        (lambda d: (d / "a.txt", (d / "a.txt").write_text("x"))[0], "not a folder, .zip or .tar"),
        (lambda d: (d / "b.zip", (d / "b.zip").write_text("x"))[0], "cannot be read"),
        (lambda d: (d / "b.tar", (d / "b.tar").write_bytes(b"\1" * 600))[0], "cannot be read"),
        (lambda d: (d / "ok", (d / "ok").mkdir())[0], None),
        (lambda d: _archive(d / "ok.zip"), None),
        (lambda d: _archive(d / "ok.tar.gz"), None),
        (lambda d: Path(BUILTIN_SOURCE), None),  # made later by the builtin stage
        (lambda d: Path("./data/../data/builtin"), None),
    ],
)
def test_data_source_is_checked_naming_the_key(tmp_path, monkeypatch, make, error):
    monkeypatch.chdir(tmp_path)
    source = str(make(tmp_path))
    if error is None:
        check_source(source)
    else:
        with pytest.raises(ConfigError, match=error) as info:
            check_source(source)
        assert info.value.key == "data.source"


@pytest.fixture
def clone(tmp_path, monkeypatch) -> Path:
    """A git repository holding the project's params.yaml, as the working folder of a stage that
    `dvc exp run` started from its HEAD."""
    (tmp_path / "params.yaml").write_bytes((ROOT / "params.yaml").read_bytes())
    env = dvc_env()
    for args in (["init", "-q"], ["add", "params.yaml"], ["commit", "-qm", "p"]):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, env=env)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, env=env)
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", head.stdout.decode().strip())
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _validate() -> None:
    validate.main(["--params", "params.yaml", "--out", MARKER])


def _hand_edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert len(re.findall(old, text, re.M)) == 1
    path.write_text(re.sub(old, new, text, flags=re.M))


def test_a_rejected_set_param_is_undone_from_the_baseline_commit(clone, capsys):
    before = (clone / "params.yaml").read_bytes()
    apply_overrides("params.yaml", ["train.batch=0"])  # what `dvc exp run -S train.batch=0` writes
    rejected = (clone / "params.yaml").read_bytes()
    assert rejected != before and rejected.count(b"\n") != before.count(b"\n")  # re-dumped
    with pytest.raises(ConfigError, match="train.batch"):
        _validate()
    assert (clone / "params.yaml").read_bytes() == before
    assert (clone / ".gancore/params.rejected.yaml").read_bytes() == rejected
    assert (clone / MARKER).read_text() == validate.VALID  # no output removed
    said = capsys.readouterr().out
    assert "baseline commit" in said and ".gancore/params.rejected.yaml" in said


def test_the_last_accepted_file_wins_over_an_older_commit(clone):
    """A valid hand edit validated since the commit is what -S started from: it comes back."""
    _hand_edit(clone / "params.yaml", r"^  total_kimg: 9 ", "  total_kimg: 5 ")
    _validate()
    edited = (clone / "params.yaml").read_bytes()
    apply_overrides("params.yaml", ["data.source=/nonexistent"])
    with pytest.raises(ConfigError, match="data.source"):
        _validate()
    assert (clone / "params.yaml").read_bytes() == edited


def test_on_a_tie_the_commit_wins(clone):
    """An earlier -S of an unchanged value left a re-dumped accepted copy holding the commit's
    values; the user then checked the commit's file out: that layout comes back."""
    committed = (clone / "params.yaml").read_bytes()
    apply_overrides("params.yaml", ["train.total_kimg=9"])
    _validate()
    assert (clone / ".gancore/params.last-valid.yaml").read_bytes() != committed
    subprocess.run(["git", "checkout", "params.yaml"], cwd=clone, check=True)
    apply_overrides("params.yaml", ["train.batch=0"])
    with pytest.raises(ConfigError, match="train.batch"):
        _validate()
    assert (clone / "params.yaml").read_bytes() == committed


@pytest.mark.parametrize("under_exp_run", [True, False])
def test_a_hand_edit_is_never_undone(clone, monkeypatch, under_exp_run):
    if not under_exp_run:  # `dvc repro`
        monkeypatch.delenv("DVC_EXP_BASELINE_REV")
    _hand_edit(clone / "params.yaml", r"^  batch: 8 ", "  batch: 0 ")
    edited = (clone / "params.yaml").read_bytes()
    with pytest.raises(ConfigError, match="train.batch"):
        _validate()
    assert (clone / "params.yaml").read_bytes() == edited
    assert not (clone / ".gancore/params.rejected.yaml").exists()


def test_a_missing_params_file_is_reported_as_such(clone):
    (clone / "params.yaml").unlink()
    with pytest.raises(ConfigError, match="not found"):
        _validate()
