"""The few-shot protocol: a 100-image folder trains on every image and is scored against the
training set, the memorisation check compares with leave-one-out distances, and every report says
so."""

from __future__ import annotations

import json

import numpy as np
import yaml
from tiny import local_mlflow, one_thread, prepare_data, stage_argv, tiny_params

from gancore.compare import write_report
from gancore.config import ShardParams
from gancore.data.shards import split_protocol
from gancore.eval.prdc import memorisation_train_set
from gancore.utils.metrics_file import read_metrics


def test_auto_chooses_the_protocol_by_dataset_size():
    auto = ShardParams(protocol="auto", fewshot_max_images=1000)
    assert split_protocol(auto, 100) == "fewshot" and split_protocol(auto, 1000) == "fewshot"
    assert split_protocol(auto, 1001) == "holdout"
    assert split_protocol(ShardParams(protocol="holdout"), 100) == "holdout"


def test_memorisation_check_catches_copies_of_the_training_set():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(100, 16))
    fresh = memorisation_train_set(rng.normal(size=(200, 16)), train)
    copies = memorisation_train_set(train[rng.integers(0, 100, 200)] + 1e-3, train)
    assert 0.8 < fresh["nn_ratio"] < 1.25 and fresh["near_copy_rate"] < 0.15
    assert copies["nn_ratio"] < 0.01 and copies["near_copy_rate"] == 1.0


def test_a_100_image_folder_trains_on_all_images_and_its_reports_say_so(
    tmp_path, monkeypatch, capsys
):
    from gancore.eval.features import EL0Features
    from stages import compress, evaluate, train

    extracted = []  # images through EL0, call by call (the real network runs)
    real_call = EL0Features.__call__

    def counted(self, images, *args, **kwargs):
        extracted.append(len(images))
        return real_call(self, images, *args, **kwargs)

    monkeypatch.setattr(EL0Features, "__call__", counted)

    params = tiny_params(tmp_path)
    raw = yaml.safe_load(params.read_text())
    raw["builtin"]["n_img"] = 100
    raw["shard"]["protocol"] = "auto"  # 100 <= fewshot_max_images (1000): few-shot
    raw["eval"].update(every_kimg=0, compare_init=False)
    params.write_text(yaml.safe_dump(raw))
    P = ["--params", str(params)]
    with local_mlflow(tmp_path), one_thread():
        prepare_data(params, tmp_path)
        manifest = json.loads((tmp_path / "shards/manifest.json").read_text())
        assert manifest["protocol"] == "fewshot"
        assert manifest["counts"]["n_train"] == manifest["counts"]["n_eval"] == 100
        # ref_stats extracted the one set of images once (issue 29, item 6), for both splits
        assert extracted == [100]
        ref = np.load(tmp_path / "ref/features.npz")
        assert np.array_equal(ref["el0_train"], ref["el0_eval"]) and len(ref["el0_train"]) == 100
        # compress scores its reconstructions on the eval split: the training images here
        capsys.readouterr()
        assert compress.main(stage_argv(params, tmp_path, "wavelet")["compress"]) == 0
        (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("[compress]")]
        assert "training-set (few-shot protocol: no hold-out) PSNR" in line, line
        assert (
            train.main(
                [
                    *P,
                    "--method",
                    "fastgan",
                    "--shards",
                    str(tmp_path / "shards"),
                    "--out",
                    str(tmp_path / "runs/fastgan"),
                    "--ckpt-root",
                    str(tmp_path / "ckpt"),
                    "--metrics",
                    str(tmp_path / "m/train.json"),
                    "--curve",
                    str(tmp_path / "m/c.csv"),
                    "--no-progress",
                ]
            )
            == 0
        )
        assert (
            evaluate.main(
                [
                    *P,
                    "--generator",
                    str(tmp_path / "runs/fastgan/generator"),
                    "--shards",
                    str(tmp_path / "shards"),
                    "--ref",
                    str(tmp_path / "ref"),
                    "--out",
                    str(tmp_path / "eval"),
                    "--metrics",
                    str(tmp_path / "m/eval.json"),
                ]
            )
            == 0
        )
    scores = read_metrics(tmp_path / "m/eval.json")  # the numbers joined with eval.info.json
    assert scores["protocol"]["split"].startswith("few-shot protocol: trained on all 100 images")
    assert scores["protocol"]["reference_set"].startswith("training set, 100 images")
    assert "memo_train_to_train_median" in scores and "memo_near_copy_rate" in scores
    report = write_report(
        f"sqlite:///{tmp_path / 'mlflow.db'}", "e2e", tmp_path / "compare"
    ).read_text()
    assert report.index("## Few-shot protocol: memorisation check") < report.index(
        "## Comparability"
    )
    assert "few-shot protocol: trained on all 100 images" in report
