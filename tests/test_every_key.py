"""One spelling per setting (issue 32, item 4): every key validation accepts (each leaf of
params.yaml, the per-method `method.<m>.train.*` overrides, and every field a section could hold
but params.yaml leaves at its default, run-time fields included), changed alone to another value,
either is rejected by validation naming the key REJECTED says, or reaches what each stage declaring
it resolves: its run (identity, and the whole train section: length, plumbing, launch), its codec's
config, or, for stages that hand the validated sections on as they are (shard, evaluate, ...), those
sections. A declaring stage that resolves the same must be listed in IGNORED_BY with its reason.

Resolved through the functions the stage bodies call (`gancore.stage.*.run_config`, `codec_config`,
`gancore.params.select`), on the full comparison's dvc.yaml; nothing trains. A new key that reaches
nothing fails here until it takes effect, is rejected, or is listed in NO_EFFECT with its reason.
Not caught: a field a stage hands on (or records in a run identity) that the code then never reads.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from fnmatch import fnmatch
from typing import Any

import pytest

from gancore.compress.codec import build_codec, codec_config
from gancore.config import TRAINING_LENGTHS, to_dict
from gancore.errors import ConfigError
from gancore.params import select, validate
from gancore.stage import codec as codec_run
from gancore.stage import decoder as decoder_run
from gancore.stage import inr as inr_run
from gancore.stage import method as method_run
from gancore.training.runconfig import RunConfig
from gancore.twostage.config import FINE_TUNING_KEYS
from gancore.twostage.training import DecoderRun
from pipelines.overrides import LENGTH_KEYS
from tests.dvc.test_dvc_params import STAGES, _script_params
from tests.dvcproject import ROOT, full_params
from tests.test_train_sections import OTHER_VALUE

RAW = full_params()
"""params.yaml, every pipeline selected (`make full`), as dvc.yaml then expands it."""

FINGERPRINT = "data-v1"


def _leaves(data: Any, prefix: str = "") -> list[str]:
    if not isinstance(data, dict) or not data:
        return [prefix[:-1]]
    return [k for key, value in data.items() for k in _leaves(value, f"{prefix}{key}.")]


BASE = validate(RAW)
ACCEPTED = {k: to_dict(v, omit_defaults=False) for k, v in BASE.items() if k != "pipelines"}
"""Every key validation accepts (each section's and method's dataclass fields, run-time ones
included), at its value in params.yaml or its default."""
YAML_LEAVES = _leaves({k: v for k, v in RAW.items() if k != "pipelines"})
LEAVES = [
    *YAML_LEAVES,
    *(k for k in _leaves(ACCEPTED) if k not in YAML_LEAVES),  # accepted, absent from params.yaml
    *(f"pipelines.{k}" for k in RAW["pipelines"]),  # each a selection, whole
]

CHANGE_TO: dict[str, list[Any]] = {
    # by field name: candidate values, the first that differs from params.yaml's is used
    **{name: [value] for name, value in OTHER_VALUE.items()},
    "batch": [OTHER_VALUE["batch"], 8],
    "seed": [1],
    "compile": ["inductor"],
    "resolution": [256],
    "n_img": [640],
    "side_px": [64],
    "source": ["data/other"],
    "crop": ["none"],
    "resize_filter": ["bicubic"],
    "min_side_px": [32],
    "eval_fraction": [0.3],
    "max_per_shard": [500],
    "protocol": ["holdout"],
    "fewshot_max_images": [100],
    "width_mult": [0.25],
    "d_width_mult": [0.125],
    "z_dim": [128],
    "style_dim": [32],
    "mapping_layers": [4],
    "mapping_lr_mult": [0.1],
    "lr": [0.001, 0.0005],
    "betas": [[0.5, 0.9]],
    "diffaugment": ["color"],
    "enabled": [True],
    "target": [0.5],
    "interval": [8],
    "kimg": [100.0],
    "recon_loss": ["mse"],
    "lpips_vgg_weights": ["/nowhere/vgg16.pth"],
    "recon_weight": [0.5],
    "r1_gamma": [1.0],
    "r1_interval": [8],
    "g_reg_interval": [8],
    "patch_px": [16],
    "n_stages": [4],
    "stage_kimg": [4.0],
    "method": ["wavelet", "pixel"],
    "name": ["db2"],
    "boundary": ["zero"],
    "levels": [2],
    "channels": [4],
    "width": [8],
    "blocks": [2],
    "depth": [2],
    "skip": [False],
    "loss": ["mse", "l1"],
    "perceptual_weight": [0.5],
    "adv_weight": [0.1],
    "pixel_weight": [0.1],
    "d_width": [16],
    "arch": ["residual", "unet"],
    "pretrain_kimg": [1.0],
    "n_gen": [100],
    "kid_subsets": [10],
    "kid_subset_size": [100],
    "swd_descriptors": [64],
    "swd_directions": [128],
    "swd_repeats": [2],
    "prdc_k": [3],
    "inception_weights": ["/nowhere/inception.pt"],
    "grid_n": [16],
    "compare_init": [False],
    "every_kimg": [2.0],
    "curve_n_gen": [50],
    "experiment": ["other"],
    "threads": [1],
    "stage": [2],
    "teacher": ["runs/inrpatch_stage1/generator"],
    "teacher_sha256": ["0" * 64],
}

NO_EFFECT = {
    # keys that change nothing a stage resolves, by design
    "track.enabled": "MLflow logging only: no result depends on it",
    "track.experiment": "the MLflow experiment runs are logged to: no result depends on it",
    "runtime.threads": "torch's CPU threads (run_main): speed, not results",
    "pipelines.onestage": "which stages dvc.yaml builds (tests/test_config_pipelines.py)",
    "pipelines.twostage": "which stages dvc.yaml builds (tests/test_config_pipelines.py)",
    "pipelines.inrpatch": "which stages dvc.yaml builds (tests/test_config_pipelines.py)",
    "pipelines.evaluate": "which stages dvc.yaml builds (tests/test_config_pipelines.py)",
}

REJECTED: dict[str, tuple[str | None, str]] = {
    # key pattern: (the key the error names, None = the key itself; why), when changing the key
    # alone is refused
    "method.*.ada.target": (None, "no effect while ada.enabled is false"),
    "method.*.ada.interval": (None, "no effect while ada.enabled is false"),
    "method.*.ada.kimg": (None, "no effect while ada.enabled is false"),
    "method.fastgan.ada.enabled": (None, "replaces diffaugment: both on is refused"),
    "method.inrpatch.stage": (None, "set by the stage when it runs"),
    "method.inrpatch.teacher": (None, "set by the stage when it runs"),
    "method.inrpatch.teacher_sha256": (None, "set by the stage when it runs"),
    "method.inrpatch.train.total_kimg": (None, "each stage trains for method.inrpatch.stage_kimg"),
    "method.inrpatch.patch_px": (
        "method.inrpatch.n_stages",
        "patch_px * 2**(n_stages - 1) must stay base.resolution: set both",
    ),
    "method.inrpatch.n_stages": (
        "pipelines.inrpatch",
        "the full comparison lists one train_inr stage per stage: set both",
    ),
    "base.resolution": (
        "method.inrpatch.n_stages",
        "the full comparison's patch INR-GAN reaches 128px in its stages: set both",
    ),
    "twostage.wavelet.compress.method": (
        "twostage.wavelet.decoder.arch",
        "its unet decoder predicts wavelet bands: another codec needs another decoder",
    ),
    "twostage.[pa]*.compress.wavelet.*": (None, "the wavelet codec's block (method wavelet)"),
    "twostage.[wp]*.compress.channels": (None, "a fixed codec keeps the image's 3 channels"),
    "twostage.[wp]*.compress.autoencoder.*": (None, "the learned codec's block (autoencoder)"),
    "twostage.pixel.decoder.arch": (None, "unet needs wavelet bands (and codec a learned codec)"),
    "twostage.[pa]*.decoder.unet.*": (None, "the unet arch's block (arch unet)"),
    "twostage.[wa]*.decoder.residual.*": (None, "the residual arch's block (arch residual)"),
    "twostage.autoencoder.decoder.arch": (
        "twostage.autoencoder.decoder.total_kimg",
        "only arch codec can be used untrained (total_kimg 0)",
    ),
    **{
        f"twostage.*.decoder.{k}": (
            None,
            "a fine-tuning key: no effect while pretrain_kimg is null",
        )
        for k in FINE_TUNING_KEYS
    },
    "twostage.autoencoder.decoder.pretrain_kimg": (None, "total_kimg 0: nothing trains"),
    **{
        f"twostage.autoencoder.decoder.{k}": (
            None,
            "a training key: no effect while total_kimg is 0",
        )
        for k in ("loss", "lr", "betas", "batch")
    },
}


def _rejection(key: str) -> tuple[str, str] | None:
    """(the key the error names, why) when changing `key` alone is refused, else None."""
    for pattern, (named, why) in REJECTED.items():
        if fnmatch(key, pattern):
            return named or key, why
    return None


IGNORED_BY = [
    # (key pattern, stage pattern, why): a declaring stage that resolves the same; another stage
    # declaring the key takes the change
    ("train.total_kimg", "train_inr@*", "each stage trains for method.inrpatch.stage_kimg"),
    ("train.total_kimg", "train_sampler@*", "twostage.<p>.sampler.total_kimg sets the sampler's"),
    ("method.fastgan.train.total_kimg", "train_sampler@*", "twostage.<p>.sampler.total_kimg"),
    # a fixed codec (wavelet, pixel) and an untrained decoder train nothing, yet declare the
    # shared train keys: params_for sees the pipeline's name, not its codec (DVC reruns them)
    ("train.*", "compress@wavelet", "a fixed codec trains nothing"),
    ("train.*", "compress@pixel", "a fixed codec trains nothing"),
    ("train.*", "train_decoder@autoencoder", "decoder.total_kimg 0: nothing trains"),
    ("base.seed", "compress@wavelet", "a fixed codec draws nothing at random"),
    ("base.seed", "compress@pixel", "a fixed codec draws nothing at random"),
    ("base.seed", "train_decoder@autoencoder", "decoder.total_kimg 0: nothing trains"),
]


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def _run(run: RunConfig | None) -> Any:
    """What the trainer takes from a run: its identity (what a checkpoint must match) and the
    whole train section it runs by (length, plumbing, launch)."""
    return None if run is None else {"identity": run.identity(), "train": run.train}


def _train(p: dict, argv: list[str]) -> Any:
    method, pipeline = _option(argv, "--method"), _option(argv, "--pipeline")
    run = method_run.run_config(p, method, pipeline, p["base"].resolution, FINGERPRINT)
    return {"run": _run(run), "curve": {k: v for k, v in p.items() if k.startswith("eval.")}}


def _train_inr(p: dict, argv: list[str]) -> Any:
    stage = int(_option(argv, "--stage"))
    cfg = p["method.inrpatch"]
    # a teacher folder is a file input (its sha256 joins the identity), not a param
    teacher = "runs/teacher" if stage > 1 else None
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("gancore.methods.inrpatch.stage.teacher_sha256", lambda path: "sha")
        run = inr_run.run_config(p, stage, teacher, FINGERPRINT)
    assert run.method_cfg.n_stages == cfg.n_stages
    return {"run": _run(run), "curve": {k: v for k, v in p.items() if k.startswith("eval.")}}


def _compress(p: dict, argv: list[str]) -> Any:
    pipeline = _option(argv, "--pipeline")
    params = p[f"twostage.{pipeline}.compress"]
    codec = build_codec(params, p["base"].resolution)
    run = codec_run.run_config(p, pipeline, FINGERPRINT) if codec.trainable else None
    return {"codec": codec_config(codec), "run": _run(run), "shards": p["shard.max_per_shard"]}


def _train_decoder(p: dict, argv: list[str]) -> Any:
    pipeline = _option(argv, "--pipeline")
    cfg = DecoderRun(decoder=p[f"twostage.{pipeline}.decoder"], codec={"from": "--codec"})
    run = decoder_run.run_config(p, cfg, FINGERPRINT)
    # untrained (run None, total_kimg 0): the codec's own decoder, of which only the arch is built
    return {"run": _run(run), "arch": cfg.decoder.arch}


def _handed_on(p: dict, argv: list[str]) -> Any:
    return p


RESOLVE: dict[str, Callable[[dict, list[str]], Any]] = {
    # by stage module: what the stage resolves from its declared params
    "stages.train": _train,
    "stages.train_inr": _train_inr,
    "stages.compress": _compress,
    "stages.train_decoder": _train_decoder,
    # these hand the validated sections on as they are (shards, features, scores, the report)
    "stages.builtin": _handed_on,
    "stages.shard": _handed_on,
    "stages.ref_stats": _handed_on,
    "stages.evaluate": _handed_on,
    "stages.assemble": _handed_on,
    "stages.compare": _handed_on,
}


def _declaring(key: str) -> list[str]:
    """The stages (but validate, which reads the whole file) declaring `key` or a section above."""
    return sorted(
        name
        for name, (declared, _) in STAGES.items()
        if any(key == d or key.startswith(f"{d}.") for d in declared)
    )


def _resolved(params: dict, stage: str) -> Any:
    declared, argv = STAGES[stage]
    module, _ = _script_params(argv)
    return to_dict(RESOLVE[module](select(params, declared), argv), omit_defaults=False)


BASE_RESOLVED: dict[str, Any] = {}


def _base_resolved(stage: str) -> Any:
    if stage not in BASE_RESOLVED:
        BASE_RESOLVED[stage] = _resolved(BASE, stage)
    return BASE_RESOLVED[stage]


def _changed(key: str) -> dict:
    """params.yaml with `key` set (added when absent) to its first CHANGE_TO value that differs."""
    raw, *path, name = [copy.deepcopy(RAW), *key.split(".")]
    section = raw
    for part in path:
        section = section.setdefault(part, {})
    now = _value(ACCEPTED, key)
    section[name] = next(v for v in CHANGE_TO[name] if v != now)
    return raw


def test_every_key_has_a_value_to_change_to_and_every_list_names_keys():
    changeable = [k for k in LEAVES if k not in NO_EFFECT]
    assert {k.split(".")[-1] for k in changeable} <= set(CHANGE_TO)
    assert set(NO_EFFECT) <= set(LEAVES)
    assert all(any(fnmatch(k, pattern) for k in LEAVES) for pattern in REJECTED)
    assert all(any(fnmatch(k, pattern) for k in LEAVES) for pattern, _, _ in IGNORED_BY)
    assert not [k for k in NO_EFFECT if _rejection(k)]


def test_every_stage_has_a_resolver():
    assert {_script_params(argv)[0] for _, argv in STAGES.values()} - {"stages.validate"} <= set(
        RESOLVE
    )


@pytest.mark.parametrize("key", [k for k in LEAVES if k not in NO_EFFECT])
def test_every_key_takes_effect_or_is_rejected(key):
    rejection = _rejection(key)
    try:
        params = validate(_changed(key))
    except ConfigError as e:
        assert rejection, f"{key}: refused ({e}); list it in REJECTED or change another way"
        assert e.key == rejection[0], str(e)
        return
    assert not rejection, f"{key} is accepted: {rejection[1]}"
    stages = _declaring(key)
    assert stages, f"{key}: no stage declares it"
    ignoring = {s for s in stages if _resolved(params, s) == _base_resolved(s)}
    expected = {s for s in stages for k, at, _ in IGNORED_BY if fnmatch(key, k) and fnmatch(s, at)}
    assert ignoring == expected, f"{key}: declared but ignored by {sorted(ignoring)}"
    assert len(ignoring) < len(stages), f"{key} reaches nothing"


# ----------------------------------------------------------------------------
# The training lengths: one table (gancore.config.TRAINING_LENGTHS, README.md) for six spellings


def _matching(pattern: str) -> dict[str, Any]:
    """{leaf of params.yaml: its value} for a TRAINING_LENGTHS key (<m>, <p>: any name)."""
    glob = pattern.replace("<m>", "*").replace("<p>", "*")
    section = RAW
    return {
        k: _value(section, k)
        for k in YAML_LEAVES
        if fnmatch(k, glob) and "." not in _named(k, glob)
    }


def _value(raw: dict, key: str) -> Any:
    for part in key.split("."):
        raw = raw[part]
    return raw


def _named(key: str, glob: str) -> str:
    """The part of `key` that the `*` of `glob` stands for ("" when none)."""
    head = glob.split("*")[0]
    return key[len(head) :].split(".")[0] if "*" in glob else ""


def _default(pattern: str) -> str:
    values = {k: "null" if v is None else f"{v:g}" for k, v in _matching(pattern).items()}
    if len(set(values.values())) == 1:
        return next(iter(values.values()))
    glob = pattern.replace("<m>", "*").replace("<p>", "*")
    return ", ".join(f"{_named(k, glob)} {v}" for k, v in values.items())


def length_table() -> str:
    """The README's table of training lengths, from TRAINING_LENGTHS and params.yaml."""
    rows = [
        "| key | sets | default | read by | raised |",
        "|---|---|---|---|---|",
        *(
            f"| `{key}` | {sets} | {_default(key)} | {read_by} | "
            f"{'continues the run' if continues else 'trains afresh'} |"
            for key, sets, read_by, continues in TRAINING_LENGTHS
        ),
    ]
    return "\n".join(rows) + "\n"


def test_every_length_in_params_yaml_is_one_row_of_the_table():
    lengths = [k for k in YAML_LEAVES if k.split(".")[-1] in LENGTH_KEYS]
    for key in lengths:
        rows = [row[0] for row in TRAINING_LENGTHS if key in _matching(row[0])]
        assert len(rows) == 1, f"{key}: rows {rows} of gancore.config.TRAINING_LENGTHS"
    assert all(_matching(row[0]) for row in TRAINING_LENGTHS)


def test_the_readme_shows_the_table():
    assert length_table() in (ROOT / "README.md").read_text(), length_table()


@pytest.mark.parametrize("row", TRAINING_LENGTHS, ids=[row[0] for row in TRAINING_LENGTHS])
def test_a_raised_length_continues_the_run_or_trains_afresh_as_the_table_says(row):
    """Raised by any spelling, a length changes the run the stage resolves; its identity (what a
    checkpoint must match) stays the same exactly where the table says the run continues."""
    pattern, _, _, continues = row
    checked = 0
    for key in _matching(pattern):
        if _rejection(key):
            continue
        params = validate(_changed(key))
        for stage in _declaring(key):
            before, after = _base_resolved(stage), _resolved(params, stage)
            if before == after or before.get("run") is None:
                continue  # IGNORED_BY; or a part that did not train at the old length
            same = before["run"]["identity"] == after["run"]["identity"]
            assert same == continues, f"{key} at {stage}"
            checked += 1
    assert checked
