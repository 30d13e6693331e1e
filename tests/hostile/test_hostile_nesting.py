"""Deep nesting and oversized documents: every JSON and YAML file gancore reads (params, a
generator's config.json, a shard manifest, codec.json, metrics, overrides, pending MLflow records)
goes through one bounded reader (gancore.utils.fsio.read_document): ~400 levels in under 2 KB are a
one-line error with exit 2, never a RecursionError. The checkpoint fallback is in
test_hostile_state.py."""

from __future__ import annotations

import json

import pytest

from gancore.cli import main as gancore_main
from gancore.compress.codec import load_codec
from gancore.data.shards import MANIFEST, read_manifest
from gancore.errors import ConfigError, DataError, DocumentError
from gancore.tracking.mlflow_tracker import replay_pending
from gancore.utils.args import exit_code_for
from gancore.utils.fsio import MAX_NESTING, parse_document, parse_yaml, read_document, read_json
from gancore.utils.metrics_file import read_metrics
from pipelines.overrides import parse_assignments

DEPTH = 400
"""The nesting that ended in a RecursionError (or was accepted) before."""


def nested_json(depth: int) -> str:
    """`depth` levels of objects and lists in turn: {"a": [{"a": [... 1 ...]}]}."""
    opens = "".join('{"a": ' if i % 2 == 0 else "[" for i in range(depth))
    closes = "".join("}" if i % 2 == 0 else "]" for i in reversed(range(depth)))
    return opens + "1" + closes


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("style", ["flow", "block"])
def test_deep_params_yaml_is_exit_2_with_one_line(tmp_path, capsys, style):
    if style == "flow":
        text = f"base:\n  seed: {nested_json(DEPTH)}\n"
    else:
        text = "".join(f"{'  ' * i}k{i}:\n" for i in range(DEPTH)) + f"{'  ' * DEPTH}1\n"
    path = tmp_path / "params.yaml"
    path.write_text(text)
    assert len(text.encode()) < 2**20
    assert gancore_main(["params", str(path)]) == 2
    err = _one_line(capsys)
    assert str(path) in err and f"nested deeper than {MAX_NESTING} levels" in err, err


def test_a_generators_deep_config_json_is_exit_2_naming_it(tmp_path, capsys):
    folder = tmp_path / "generator"
    folder.mkdir()
    (folder / "config.json").write_text(
        f'{{"format": "gancore.generator/1", "x": {nested_json(DEPTH)}}}'
    )
    argv = ["generate", "--generator", str(folder), "--n", "1", "--out", str(tmp_path / "g.png")]
    assert gancore_main(argv) == 2
    err = _one_line(capsys)
    assert "config.json" in err and "nested deeper" in err, err
    assert not (tmp_path / "g.png").exists()


def test_a_deep_shard_manifest_is_a_data_error(tmp_path, capsys):
    (tmp_path / MANIFEST).write_text(nested_json(DEPTH))
    with pytest.raises(DataError, match=f"{MANIFEST}: nested deeper") as info:
        read_manifest(tmp_path)
    assert exit_code_for(info.value) == 2


def test_a_deep_codec_json_is_a_data_error(tmp_path):
    (tmp_path / "codec.json").write_text(nested_json(DEPTH))
    with pytest.raises(DataError, match="codec.json: nested deeper"):
        load_codec(tmp_path)


def test_deep_metrics_and_pending_records_are_document_errors(tmp_path):
    (tmp_path / "metrics.json").write_text(nested_json(DEPTH))
    with pytest.raises(DocumentError, match="metrics.json: nested deeper"):
        read_metrics(tmp_path / "metrics.json")
    pending = tmp_path / "pending.jsonl"
    pending.write_text('{"op": "start", "experiment": "x"}\n' + nested_json(DEPTH) + "\n")
    with pytest.raises(DocumentError, match="pending.jsonl line 2: nested deeper"):
        replay_pending(pending, f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_a_deep_override_value_is_a_config_error():
    with pytest.raises(ConfigError, match="train.device: nested deeper"):
        parse_assignments([f"train.device={nested_json(DEPTH)}"])


@pytest.mark.parametrize("kind", ["json", "yaml"])
def test_nesting_past_the_parsers_recursion_limit_is_a_document_error(tmp_path, kind):
    """100,000 levels: the parser itself would recurse too deep."""
    path = tmp_path / f"deep.{kind}"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DocumentError, match="nested deeper"):
        read_document(path, parse_yaml if kind == "yaml" else json.loads)


def test_the_nesting_limit_is_inclusive():
    assert parse_document(nested_json(MAX_NESTING), "x") is not None
    with pytest.raises(DocumentError, match="x: nested deeper than 64 levels"):
        parse_document(nested_json(MAX_NESTING + 1), "x")


def test_an_oversized_document_is_refused_before_it_is_parsed(tmp_path):
    path = tmp_path / "big.json"
    path.write_text("[" + "1," * 1000 + "1]")
    with pytest.raises(DocumentError, match="over the 100-byte limit"):
        read_json(path, max_bytes=100)


def test_a_fifo_is_refused_not_waited_on(tmp_path):
    import os

    os.mkfifo(tmp_path / "fifo.json")
    with pytest.raises(DocumentError, match="not a regular file"):
        read_json(tmp_path / "fifo.json")
