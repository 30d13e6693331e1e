"""The params.yaml schema as frozen dataclasses, built strictly: unknown keys, wrong types and
impossible values fail before any work, with a message naming the key (the stylegan3/torchtitan
pattern). The bottom layer: it imports no method and no registry; gancore.params loads a whole file
(the method sections through the registry)."""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from gancore.errors import ConfigError

__all__ = [
    "STAGED_METHODS",
    "TRAINING_LENGTHS",
    "ConfigError",
    "LaunchParams",
    "MethodParams",
    "PipelinesParams",
    "PlumbingParams",
    "RegistrySection",
    "TrainOverrides",
    "build_dataclass",
    "build_pipelines",
    "check_every_pipeline",
    "inr_stage_table",
    "is_power_of_two",
    "require",
    "require_defaults",
    "to_dict",
    "unknown_key",
    "with_overrides",
]


def is_power_of_two(n: int) -> bool:
    """True for 1, 2, 4, 8, ..."""
    return n > 0 and n & (n - 1) == 0


# ----------------------------------------------------------------------------
# Numeric ranges: one table for every section (new fields of these names get them too)

INT_LIMIT = 2**32 - 1
"""Any integer field: |value| <= this (seeds are 32-bit), unless NUMERIC_RANGES says narrower."""
FLOAT_LIMIT = 1e9
"""Any number field: finite and |value| <= this, unless NUMERIC_RANGES says narrower."""

NUMERIC_RANGES: dict[str, tuple[float, float]] = {
    # field name: (lowest, highest) allowed, both included, in whichever section holds the field;
    # each section's own checks then narrow it (e.g. total_kimg > 0).
    "seed": (0, 2**32 - 1),  # numpy's seed range
    "batch": (1, 2**16),
    "total_kimg": (0, 1e6),
    "stage_kimg": (0, 1e6),
    "ckpt_every_kimg": (0, 1e6),
    "lr": (0, 1),
    "mapping_lr_mult": (0, 1),
    "width_mult": (0, 8),  # 8x the paper's widths
    "d_width_mult": (0, 8),
    "width": (1, 4096),
    "z_dim": (1, 4096),
    "style_dim": (1, 4096),
    "channels": (1, 4096),
    "blocks": (0, 256),
    "mapping_layers": (0, 64),
    "n_stages": (1, 16),
    "patch_px": (1, 2**15),
    "side_px": (1, 2**15),
    "min_side_px": (0, 2**15),
    "n_img": (1, 10**8),
    "n_gen": (1, 10**7),
    "grid_n": (1, 4096),
    "max_per_shard": (1, 10**6),
    "shuffle_buffer": (1, 10**6),
    "decode_threads": (1, 256),
    "keep_latest_k": (1, 10**4),
    "max_nan_retries": (0, 100),
    "grad_accum": (1, 2**16),
    "nproc_per_node": (1, 1024),
    "nnodes": (1, 10**5),
}
"""Documented range of every numeric field by name (the README's reliability section links here)."""


def require(section: Any, checks: Mapping[str, bool]) -> None:
    """Raise ConfigError naming the first key of `checks` whose condition on `section` is False."""
    for key, ok in checks.items():
        if not ok:
            raise ConfigError(key, f"impossible value {getattr(section, key)!r}")


def _check_range(name: str, value: Any, key: str) -> None:
    """Raise ConfigError when a checked int or float is outside NUMERIC_RANGES[name]."""
    if name not in NUMERIC_RANGES or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    lo, hi = NUMERIC_RANGES[name]
    if not lo <= value <= hi:
        raise ConfigError(key, f"must be in [{lo:g}, {hi:g}], got {value!r}")


# ----------------------------------------------------------------------------
# Generic dataclass builder


def _check_value(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`; return it converted (list -> tuple, int ->
    float)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _check_value(value, option, key)
            except ConfigError as e:
                errors.append(e.problem)
        raise ConfigError(key, " or ".join(errors))
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(key, f"must be one of {list(allowed)}, got {value!r}")
        return value
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(key, f"must be a list of {len(args)} values, got {value!r}")
        return tuple(_check_value(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if isinstance(tp, type) and issubclass(tp, RegistrySection):
        return tp.from_params(value, key)
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"must be an integer, got {value!r}")
        if abs(value) > INT_LIMIT:
            raise ConfigError(key, f"must be within +-{INT_LIMIT}, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"must be a number, got {value!r}")
        # abs() first: isfinite(10**400) would overflow; NaN fails only isfinite.
        if abs(value) > FLOAT_LIMIT or not math.isfinite(value):
            raise ConfigError(
                key, f"must be a finite number within +-{FLOAT_LIMIT:g}, got {value!r}"
            )
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"must be a string, got {value!r}")
        return value
    raise TypeError(f"{key}: unsupported annotation {tp!r}")


def unknown_key(prefix: str, name: str, known: list[str]) -> ConfigError:
    """The error of key `prefix + name`, not among `known`, with the closest known key as a hint."""
    hint = difflib.get_close_matches(name, known, n=1)
    extra = f" (did you mean {prefix}{hint[0]}?)" if hint else f"; known keys: {', '.join(known)}"
    return ConfigError(f"{prefix}{name}", f"unknown key{extra}")


def build_dataclass(
    cls: type, data: Any, prefix: str, given: Mapping[str, Any] | None = None
) -> Any:
    """Build the frozen dataclass `cls` from a mapping, checking every key and value.

    Args:
        cls: a dataclass whose fields carry plain annotations (int, float, str, bool, Literal,
            tuples, `X | None`, nested dataclasses, RegistrySection).
        data: the mapping read from YAML (None means "all defaults").
        prefix: the dotted key of this section, used in error messages.
        given: fields the caller has built already; not keys of `data`.

    Raises:
        ConfigError: naming the first offending key.
    """
    if given is None and isinstance(cls, type) and issubclass(cls, RegistrySection):
        return cls.from_params(data, prefix)
    data = {} if data is None else data
    given = given or {}
    if not isinstance(data, Mapping):
        raise ConfigError(prefix, f"must be a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name not in given}
    dot = f"{prefix}." if prefix else ""
    for name in data:
        if name not in fields:
            raise unknown_key(dot, str(name), sorted(fields))
    kwargs = dict(given)
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _check_value(data[name], hints[name], f"{dot}{name}")
            _check_range(name, kwargs[name], f"{dot}{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{dot}{name}", "is required")
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{dot}{e.key}", e.problem) from None


def require_defaults(section: Any, keys: Iterable[str], why: str) -> None:
    """Raise ConfigError naming the first of `keys` whose value in the dataclass `section` is not
    its field's default: a key that has no effect `why` is refused rather than ignored (one
    spelling per setting, issue 32)."""
    fields = {f.name: f for f in dataclasses.fields(section)}
    for key in keys:
        f = fields[key]
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        if getattr(section, key) != default:
            raise ConfigError(key, f"has no effect {why}")


RUN_TIME = {"run_time": True}
"""Field metadata: a value the stage sets when it runs (e.g. patch INR-GAN's stage and teacher),
recorded in run identities and exported configs but refused in params.yaml (gancore.params)."""


def run_time_fields(cls: type) -> set[str]:
    """The RUN_TIME fields of the dataclass `cls`."""
    return {f.name for f in dataclasses.fields(cls) if f.metadata.get("run_time")}


OMIT_DEFAULT = {"omit_default": True}
"""Field metadata: to_dict leaves the field out while it holds its default, so adding such a field
keeps every existing run identity, config.json and MLflow param set as it was."""


def _omitted(obj: Any, f: dataclasses.Field) -> bool:
    return (
        bool(f.metadata.get("omit_default"))
        and f.default_factory is not dataclasses.MISSING
        and getattr(obj, f.name) == f.default_factory()
    )


def to_dict(obj: Any, omit_defaults: bool = True) -> Any:
    """A dataclass (or nest of them) as plain JSON-able dicts and lists.

    Args:
        omit_defaults: leave out OMIT_DEFAULT fields that hold their default (as run identities and
            config.json do); False keeps every field, as params.yaml lists them.
    """
    if isinstance(obj, RegistrySection):
        return obj.to_params(omit_defaults)
    if dataclasses.is_dataclass(obj):
        return {
            f.name: to_dict(getattr(obj, f.name), omit_defaults)
            for f in dataclasses.fields(obj)
            if not (omit_defaults and _omitted(obj, f))
        }
    if isinstance(obj, (list, tuple)):
        return [to_dict(v, omit_defaults) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v, omit_defaults) for k, v in obj.items()}
    return obj


# ----------------------------------------------------------------------------
# Sections with a settings block per registered choice (codecs, decoder architectures)


class RegistrySection:
    """Base of a frozen dataclass section whose field `CHOICE` names one entry of a registry and
    whose field `settings` holds one block per registered entry that has settings (params.yaml
    `<section>.<entry>`, e.g. `compress.wavelet`). The chosen entry's block takes effect; every
    other must keep its defaults (require_defaults' rule), so an accepted key always takes effect.

    Built by build_dataclass from YAML (`from_params`); written by to_dict (`to_params`): with
    omit_defaults only the chosen block, so registering an entry changes no run identity.
    Subclasses call `check_settings` first in `__post_init__`.
    """

    CHOICE: ClassVar[str]
    """The field naming the chosen entry."""
    settings: Mapping[str, Any]

    @classmethod
    def registered(cls) -> dict[str, type | None]:
        """{every registered entry: its settings dataclass or None}."""
        raise NotImplementedError

    @classmethod
    def _blocks(cls) -> dict[str, type]:
        blocks = {k: v for k, v in cls.registered().items() if v is not None}
        clash = set(blocks) & {f.name for f in dataclasses.fields(cls)}
        if clash:
            raise TypeError(f"{cls.__name__}: entries {sorted(clash)} clash with its own keys")
        return blocks

    @classmethod
    def from_params(cls, data: Any, prefix: str) -> Any:
        """The section from a YAML mapping, every error naming its full key."""
        if data is not None and not isinstance(data, Mapping):
            raise ConfigError(prefix, f"must be a mapping of keys, got {data!r}")
        data, blocks = data or {}, cls._blocks()
        dot = f"{prefix}." if prefix else ""
        known = sorted(
            [*(f.name for f in dataclasses.fields(cls) if f.name != "settings"), *blocks]
        )
        for name in data:
            if name not in known:
                raise unknown_key(dot, str(name), known)
        settings = {k: build_dataclass(v, data.get(k), f"{dot}{k}") for k, v in blocks.items()}
        rest = {k: v for k, v in data.items() if k not in blocks}
        return build_dataclass(cls, rest, prefix, given={"settings": settings})

    def check_settings(self) -> None:
        """Check the choice, complete `settings` with the defaults of the blocks not given and
        refuse a changed block of an entry not chosen (ConfigError naming `<entry>.<key>`)."""
        choice, registered, blocks = getattr(self, self.CHOICE), self.registered(), self._blocks()
        if choice not in registered:
            raise ConfigError(
                self.CHOICE, f"unknown {choice!r}; registered: {', '.join(sorted(registered))}"
            )
        unknown = set(self.settings) - set(blocks)
        if unknown:
            raise ConfigError(sorted(unknown)[0], "no registered entry with settings")
        full = {k: self.settings.get(k, v()) for k, v in blocks.items()}
        for name, block in full.items():
            if type(block) is not blocks[name]:
                raise TypeError(f"settings[{name!r}] must be a {blocks[name].__name__}")
            if name == choice:
                continue
            keys = [f.name for f in dataclasses.fields(block)]
            try:
                require_defaults(block, keys, f"with {self.CHOICE} {choice}: a setting of {name}")
            except ConfigError as e:
                raise ConfigError(f"{name}.{e.key}", e.problem) from None
        object.__setattr__(self, "settings", full)

    @property
    def chosen(self) -> Any:
        """The chosen entry's settings block (None when it has none)."""
        return self.settings.get(getattr(self, self.CHOICE))

    def to_params(self, omit_defaults: bool) -> dict[str, Any]:
        """As params.yaml spells it: the own keys, then the blocks (only the chosen one with
        omit_defaults: the others hold their defaults)."""
        out = {
            f.name: to_dict(getattr(self, f.name), omit_defaults)
            for f in dataclasses.fields(self)
            if f.name != "settings"
        }
        choice = getattr(self, self.CHOICE)
        for name, block in self.settings.items():
            if name == choice or not omit_defaults:
                out[name] = to_dict(block, omit_defaults)
        return out


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1} (for MLflow params)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# ----------------------------------------------------------------------------
# The sections of params.yaml


@dataclass(frozen=True, kw_only=True)
class BaseParams:
    seed: int = 0
    """Seed for everything random: data split order, initialisation, latents, metrics."""
    resolution: int = 64
    """Training resolution in pixels (square, power of two)."""

    def __post_init__(self) -> None:
        if not is_power_of_two(self.resolution) or not 16 <= self.resolution <= 2048:
            raise ConfigError(
                "resolution", f"must be a power of two in [16, 2048], got {self.resolution}"
            )
        if self.seed < 0:
            raise ConfigError("seed", f"must be >= 0, got {self.seed}")


@dataclass(frozen=True, kw_only=True)
class DataParams:
    source: str = "data/builtin"
    """Folder (searched recursively), .zip or .tar of images; the built-in demo set by default."""

    def __post_init__(self) -> None:
        if not self.source:
            raise ConfigError("source", "must name a folder, .zip or .tar of images")


@dataclass(frozen=True, kw_only=True)
class BuiltinParams:
    n_img: int = 1280
    """Number of demo images cropped from the photographs that ship in scikit-image."""
    side_px: int = 128
    """Side of each stored demo image in pixels (shards resize it to base.resolution)."""

    def __post_init__(self) -> None:
        if self.n_img < 1:
            raise ConfigError("n_img", f"must be >= 1, got {self.n_img}")
        if self.side_px < 16:
            raise ConfigError("side_px", f"must be >= 16, got {self.side_px}")


@dataclass(frozen=True, kw_only=True)
class ShardParams:
    crop: Literal["center", "none"] = "center"
    """center: crop the largest centred square; none: resize the whole image (aspect not kept)."""
    resize_filter: Literal["lanczos", "bicubic", "bilinear", "box", "nearest"] = "lanczos"
    """PIL resampling filter (all but nearest are antialiased when shrinking)."""
    min_side_px: int = 0
    """Images whose shorter side is below this are skipped as too small; 0 = base.resolution / 2."""
    eval_fraction: float = 0.2
    """Share of images held out for evaluation, chosen by a hash of their content."""
    max_per_shard: int = 1000
    """Samples per tar shard."""
    # Evaluation protocol (issue "Quality per compute…": the few-shot protocol)
    protocol: Literal["auto", "holdout", "fewshot"] = "holdout"
    """holdout: train on all but `eval_fraction` of the images, score against those held out;
    fewshot: train on every image and score against the training set (the few-shot papers'
    protocol; the memorisation check then compares with leave-one-out training distances);
    auto: fewshot up to `fewshot_max_images` usable images, else holdout."""
    fewshot_max_images: int = 1000
    """Largest dataset `auto` treats as few-shot (FastGAN's home ground is 100-1,000 images)."""

    def __post_init__(self) -> None:
        if self.fewshot_max_images < 2:
            raise ConfigError("fewshot_max_images", f"must be >= 2, got {self.fewshot_max_images}")
        if not 0.0 < self.eval_fraction < 1.0:
            raise ConfigError("eval_fraction", f"must be in (0, 1), got {self.eval_fraction}")
        if self.max_per_shard < 1:
            raise ConfigError("max_per_shard", f"must be >= 1, got {self.max_per_shard}")
        if self.min_side_px < 0:
            raise ConfigError("min_side_px", f"must be >= 0, got {self.min_side_px}")


@dataclass(frozen=True, kw_only=True)
class PlumbingParams:
    """How a training run checkpoints, logs, runs and reads its data (params.yaml
    `train.plumbing`): nothing here changes what is computed, so the whole section stays out of the
    run identity (a run resumes under other values), and every training shares it (dvc.yaml's
    two-stage parts declare `train.plumbing` whole)."""

    ckpt_every_kimg: float = 2.0
    """Checkpoint interval in kimg (a final checkpoint is always written)."""
    keep_latest_k: int = 3
    """Checkpoints kept; older ones are deleted after each save."""
    log_every_steps: int = 25
    """Interval, in steps, of loss/throughput logging."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto = cuda when present."""
    max_nan_retries: int = 3
    """Rollbacks to the last good checkpoint allowed after a NaN/inf loss before stopping."""
    decode_threads: int = 2
    """Threads decoding images from the shards."""

    def __post_init__(self) -> None:
        checks = {
            "ckpt_every_kimg": self.ckpt_every_kimg > 0,
            "keep_latest_k": self.keep_latest_k >= 1,
            "log_every_steps": self.log_every_steps >= 1,
            "max_nan_retries": self.max_nan_retries >= 0,
            "decode_threads": self.decode_threads >= 1,
        }
        require(self, checks)


@dataclass(frozen=True, kw_only=True)
class LaunchParams:
    """The processes a one-stage training runs on (params.yaml `train.launch`): out of the run
    identity as a whole, which records only the micro-batch streams they make with grad_accum (a
    run resumes on any layout of as many streams). The two-stage parts run one process."""

    nproc_per_node: int = 1
    """Training processes per node (GPUs); > 1 launches the stage under torchrun."""
    nnodes: int = 1
    """Nodes of a multi-node run (rendezvous at MASTER_ADDR:MASTER_PORT, this node's NODE_RANK)."""

    def __post_init__(self) -> None:
        require(self, {"nproc_per_node": self.nproc_per_node >= 1, "nnodes": self.nnodes >= 1})


@dataclass(frozen=True, kw_only=True)
class TrainParams:
    batch: int = 8
    """Images per step."""
    total_kimg: float = 30.0
    """Training length in thousands of real images shown to D."""
    ema_beta: float = 0.999
    """Per-step decay of the exponential moving average of G's parameters."""
    ema_rampup: float = 0.02
    """EMA half-life capped at this fraction of the images seen (StyleGAN2-ADA); 0 = always
    ema_beta."""
    mixed_precision: Literal["auto", "off", "bf16", "fp16"] = "auto"
    """auto = the method's official precision (fp32 for FastGAN, PixelFolder and CIPS); bf16 or fp16
    (with loss scaling) are opt-ins on CUDA; CPU runs are always fp32."""
    shuffle_buffer: int = 1000
    """Samples in the seeded shuffle buffer of the shard reader."""
    xflip: bool = True
    """Flip half of the training images horizontally (seeded)."""
    bn_recalibration_batches: int = 32
    """Batches of fresh latents that recompute G_ema's BatchNorm statistics for the exported
    generator."""
    grad_accum: int = 1
    """Micro-batches per step on each rank (gradients summed); `batch` stays the global batch."""
    compile: Literal["eager", "inductor", "aot_eager"] = dataclasses.field(
        default_factory=lambda: "eager", metadata=OMIT_DEFAULT
    )
    """torch.compile of every phase of the step (the method's loss as the step calls it: every
    network entry point it uses, lazy R1's input gradient included; backward, optimizer and EMA
    stay eager), by backend: eager = not compiled; inductor = generated kernels (the GPU's; within
    float rounding of eager); aot_eager = traced and functionalised without code generation (the
    tests'; eager's numbers). In the run identity unless eager (gancore/training/compile.py)."""
    plumbing: PlumbingParams = dataclasses.field(default_factory=PlumbingParams)
    """Checkpointing, logging, device and data reading: out of the run identity."""
    launch: LaunchParams = dataclasses.field(default_factory=LaunchParams)
    """The processes of the run: out of the run identity but for the streams they make."""

    def __post_init__(self) -> None:
        n_streams = self.grad_accum * self.launch.nproc_per_node * self.launch.nnodes
        checks = {
            "batch": self.batch >= 1,
            "total_kimg": self.total_kimg > 0,
            "ema_beta": 0.0 <= self.ema_beta < 1.0,
            "ema_rampup": self.ema_rampup >= 0.0,
            "shuffle_buffer": self.shuffle_buffer >= 1,
            "bn_recalibration_batches": self.bn_recalibration_batches >= 0,
            "grad_accum": self.grad_accum >= 1,
        }
        require(self, checks)
        if self.batch % n_streams:
            raise ConfigError(
                "batch",
                f"{self.batch} images do not split into launch.nproc_per_node x launch.nnodes x "
                f"grad_accum = {n_streams} equal micro-batches",
            )


@dataclass(frozen=True, kw_only=True)
class TrainOverrides:
    """A method's own values for keys of the train section (params.yaml `method.<name>.train`); null
    keeps the train section's. The official codes differ: FastGAN batch 8, CIPS 32, PixelFolder
    64."""

    batch: int | None = None
    """train.batch for this method."""
    total_kimg: float | None = None
    """train.total_kimg for this method (the papers train for very different lengths)."""
    ema_beta: float | None = None
    """train.ema_beta for this method (per step: a half-life of h images is 0.5 ** (batch / h))."""
    ema_rampup: float | None = None
    """train.ema_rampup for this method (0 = a constant ema_beta, as the official codes)."""
    mixed_precision: Literal["auto", "off", "bf16", "fp16"] | None = None
    """train.mixed_precision for this method (auto = the method's official precision)."""
    grad_accum: int | None = None
    """train.grad_accum for this method (a batch that does not fit in memory at once)."""


def with_overrides(train: TrainParams, overrides: TrainOverrides, prefix: str = "") -> TrainParams:
    """`train` with the non-null keys of `overrides` replaced, checked as a whole train section.

    Raises:
        ConfigError: the merged section is impossible, named as `prefix` + the overriding key.
    """
    changes = {k: v for k, v in to_dict(overrides).items() if v is not None}
    try:
        return dataclasses.replace(train, **changes)
    except ConfigError as e:
        key = f"{prefix}{e.key}" if e.key in changes else f"train.{e.key}"
        raise ConfigError(key, e.problem) from None


@dataclass(frozen=True, kw_only=True)
class MethodParams:
    """Base of every method's params (params.yaml `method.<name>`): what all methods share."""

    train: TrainOverrides = dataclasses.field(default_factory=TrainOverrides, metadata=OMIT_DEFAULT)
    """This method's overrides of the train section (absent from run identities while unset)."""


@dataclass(frozen=True, kw_only=True)
class EvalParams:
    n_gen: int = 1000
    """Generated images per evaluation (Fréchet distances are only comparable at equal counts)."""
    batch: int = 50
    """Images per generator / feature-network batch."""
    kid_subsets: int = 100
    """Subsets averaged for KID (mean and std are reported)."""
    kid_subset_size: int = 1000
    """Images per KID subset (capped by the smaller set)."""
    swd_descriptors: int = 128
    """7x7 descriptors drawn per image and pyramid level for SWD."""
    swd_directions: int = 512
    """Random projection directions per SWD repeat."""
    swd_repeats: int = 4
    """SWD repeats averaged."""
    prdc_k: int = 5
    """Nearest-neighbour k of precision, recall, density and coverage."""
    inception_weights: str = "~/.cache/gancore/inception-2015-12-05.pt"
    """clean-fid's TorchScript Inception file, checked against its published sha256; FID/KID on
    Inception are unavailable without it. Not in /tmp: a file others can write there would run."""
    grid_n: int = 64
    """Fixed-latent samples in the grid PNG (a square number)."""
    compare_init: bool = True
    """Also score the generator at initialisation, as the floor a trained one must beat."""
    seed: int = 0
    """Seed of latents, KID subsets and SWD projections."""
    # In-training quality curve (gancore/eval/curve.py)
    every_kimg: float = 0.0
    """KID-EL0 of G_ema on `curve_n_gen` fixed latents every this many kimg of a one-stage training
    run, against the cached reference features (0 = off)."""
    curve_n_gen: int = 100
    """Generated images per point of the in-training curve."""

    def __post_init__(self) -> None:
        if self.every_kimg < 0:
            raise ConfigError("every_kimg", f"must be >= 0 (0 = off), got {self.every_kimg}")
        positive = (
            "n_gen",
            "batch",
            "kid_subsets",
            "kid_subset_size",
            "swd_descriptors",
            "swd_directions",
            "swd_repeats",
            "prdc_k",
            "grid_n",
            "curve_n_gen",
        )
        for key in positive:
            if getattr(self, key) < 1:
                raise ConfigError(key, f"must be >= 1, got {getattr(self, key)}")
        if round(self.grid_n**0.5) ** 2 != self.grid_n:
            raise ConfigError("grid_n", f"must be a square number, got {self.grid_n}")


@dataclass(frozen=True, kw_only=True)
class TrackParams:
    enabled: bool = True
    """Log runs to MLflow (store: MLFLOW_TRACKING_URI, else sqlite at <project>/mlflow.db)."""
    experiment: str = "gancore"
    """MLflow experiment name."""


# ----------------------------------------------------------------------------
# runtime: how stages use this machine (helper C's block)


@dataclass(frozen=True, kw_only=True)
class RuntimeParams:
    threads: int | Literal["auto"] = "auto"
    """torch's CPU threads per stage: a count, or auto = the usable cores divided among the stages
    that run at once (gancore/utils/threads.py)."""

    def __post_init__(self) -> None:
        if self.threads != "auto" and not 1 <= self.threads <= 1024:
            raise ConfigError("threads", f"must be auto or in [1, 1024], got {self.threads!r}")


def check_every_pipeline(params: dict[str, Any], names: Iterable[str] | None = None) -> None:
    """A method config tied to base.resolution (`check_final`: inrpatch's patch_px *
    2**(n_stages-1)), for the methods in `names` (None: every method of the file). validate() runs
    it for the pipelines the file selects, since a file may hold settings of pipelines it never
    runs at this resolution (the tests' tiny files do); `gancore params` runs it for every method so
    a full run's mistake shows before hours of earlier stages.

    Raises:
        ConfigError: naming the key.
    """
    methods = params["method"]
    for name in methods if names is None else [n for n in names if n in methods]:
        if callable(getattr(methods[name], "check_final", None)):
            methods[name].check_final(params["base"].resolution)


# ----------------------------------------------------------------------------
# What `dvc repro` builds: dvc.yaml's foreach lists read params.yaml's `pipelines` section

STAGED_METHODS = ("inrpatch",)
"""Registered methods trained stage by stage (train_inr@<k>, pipelines.inrpatch), not by train@."""


def inr_stage_table(n_stages: int) -> dict[str, dict[str, str]]:
    """The train_inr@<k> items of patch INR-GAN's `n_stages` stages (pipelines.inrpatch): stage
    k > 1 depends on stage k-1's generator folder (its frozen teacher); the last: runs/inrpatch."""
    out = {
        k: "runs/inrpatch" if k == n_stages else f"runs/inrpatch_stage{k}"
        for k in range(1, n_stages + 1)
    }
    return {
        str(k): {
            "teacher": f"{out[k - 1]}/generator" if k > 1 else "",
            "after": f"{out[k - 1]}/generator" if k > 1 else "data/shards",
            "out": out[k],
        }
        for k in out
    }


@dataclass(frozen=True, kw_only=True)
class PipelinesParams:
    """The pipelines `dvc repro` builds (dvc.yaml's foreach lists); `evaluate@<name>` ends each."""

    onestage: tuple[str, ...] = ("fastgan",)
    """Registered methods trained by train@<method>."""
    twostage: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """{pipeline of the twostage section: its sampler, a registered method}."""
    inrpatch: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)
    """{} or the train_inr@<k> items, exactly inr_stage_table(method.inrpatch.n_stages)."""
    evaluate: tuple[str, ...] = ("fastgan",)
    """Every pipeline above, once: onestage, the twostage names and inrpatch when it is on."""

    def names(self) -> list[str]:
        """The pipelines the family lists select, in order."""
        return [*self.onestage, *self.twostage, *(["inrpatch"] if self.inrpatch else [])]


def _names(raw: Any, key: str) -> tuple[str, ...]:
    if not isinstance(raw, (list, tuple)) or not all(isinstance(v, str) for v in raw):
        raise ConfigError(key, f"must be a list of names, got {raw!r}")
    if len(set(raw)) != len(raw):
        raise ConfigError(key, f"lists a name twice: {list(raw)}")
    return tuple(raw)


def build_pipelines(raw: Any) -> PipelinesParams:
    """The `pipelines` section, its names checked for form (gancore.params checks them against the
    registry and the other sections)."""
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ConfigError("pipelines", "must map onestage, twostage, inrpatch and evaluate")
    known = [f.name for f in dataclasses.fields(PipelinesParams)]
    for name in raw:
        if name not in known:
            raise unknown_key("pipelines.", str(name), known)
    twostage, inrpatch = raw.get("twostage", {}), raw.get("inrpatch", {})
    for key, value in (("twostage", twostage), ("inrpatch", inrpatch)):
        if not isinstance(value, Mapping):
            raise ConfigError(f"pipelines.{key}", f"must be a mapping ({{}} = none), got {value!r}")
    return PipelinesParams(
        onestage=_names(raw.get("onestage", ["fastgan"]), "pipelines.onestage"),
        twostage={str(k): v for k, v in twostage.items()},
        inrpatch={str(k): v for k, v in inrpatch.items()},
        evaluate=_names(raw.get("evaluate", ["fastgan"]), "pipelines.evaluate"),
    )


TRAINING_LENGTHS: tuple[tuple[str, str, str, bool], ...] = (
    # (key: <m> a method, <p> a twostage pipeline; what it sets; the stages that read it; whether
    # raising it continues a finished run, the length staying out of the run identity, or trains
    # afresh, the length being part of the part's own config)
    (
        "train.total_kimg",
        "a one-stage method's or a sampler's length, unless one below sets it",
        "`train@<m>`, `train_sampler@<p>`",
        True,
    ),
    (
        "method.<m>.train.total_kimg",
        "method m's own length (null = `train.total_kimg`); refused for inrpatch",
        "`train@<m>`, `train_sampler@<p>`",
        True,
    ),
    ("method.inrpatch.stage_kimg", "each patch INR-GAN stage's length", "`train_inr@<k>`", False),
    (
        "twostage.<p>.sampler.total_kimg",
        "the sampler's length on codes (null = its method's)",
        "`train_sampler@<p>`",
        True,
    ),
    (
        "twostage.<p>.decoder.total_kimg",
        "the decoder's length (0, arch codec only: used untrained)",
        "`train_decoder@<p>`",
        False,
    ),
    (
        "twostage.<p>.compress.autoencoder.total_kimg",
        "the learned codec's length (compress.method autoencoder)",
        "`compress@<p>`",
        False,
    ),
)
"""Every spelling of a training length: the README's table, which tests/test_every_key.py
checks against this, params.yaml and the run identities."""


SECTIONS: dict[str, type] = {
    "base": BaseParams,
    "data": DataParams,
    "builtin": BuiltinParams,
    "shard": ShardParams,
    "train": TrainParams,
    "eval": EvalParams,
    "track": TrackParams,
    "runtime": RuntimeParams,
}
