"""Apply each known-bad change (a mutation) to a scratch copy of the tree, run the chosen tests
there, and write which tests fail into docs/testing.md: proof that the suite tells a learning GAN
from a broken one.

Each mutation is data (file, exact old text, new text): when a file moves, edit MUTATIONS. A
mutation whose old text is not found exactly once stops the script with an error (it never
silently "survives"). The unmutated copy is run too: a test failing there fails the script.

Run: `python -m scripts.mutations --jobs 2` (all mutations; about an hour of CPU), or
`python -m scripts.mutations --only fastgan_g_sign --no-write` to check one.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "testing.md"
BEGIN, END = "<!-- mutations:begin -->", "<!-- mutations:end -->"
TESTS = (
    "tests/methods",
    "tests/training/test_ema.py",
    "tests/compress/test_dwt.py",
    "tests/compress/test_codec.py",
    "tests/compress/test_decoders_on_images.py",
    "tests/twostage/test_decoder_finetune.py",
    "tests/benchmarks/test_learnability.py",
    "tests/stage/test_stages_e2e.py::test_the_exported_generator_is_the_last_checkpoints_g_ema",
    "tests/data/test_data_shards.py::test_training_stages_read_exactly_the_train_split",
    "tests/training/test_resume_streams.py",
    "tests/eval/test_quality_curve.py",
)
"""Test paths run against every mutation (the method, component and learnability tests, the stage
export's, the training split's and the resume of several streams)."""
MAX_LISTED = 8
"""Failing tests named per mutation in the table; the rest are counted."""


@dataclass(frozen=True)
class Mutation:
    name: str
    what: str
    file: str
    old: str
    new: str


MUTATIONS = (
    Mutation(
        "fastgan_g_sign",
        "FastGAN: G's loss sign flipped (+D(G(z)))",
        "gancore/methods/fastgan/loss.py",
        "loss = -logits.float().mean()",
        "loss = logits.float().mean()",
    ),
    Mutation(
        "stylegan2_g_sign",
        "StyleGAN2 loss (PixelFolder, CIPS, inrpatch): non-saturating G term sign flipped",
        "gancore/methods/stylegan2_family.py",
        "return F.softplus(-fake_logits.float()).mean()",
        "return F.softplus(fake_logits.float()).mean()",
    ),
    Mutation(
        "fastgan_d_fake_sign",
        "FastGAN: the fake term's sign flipped in D's hinge loss",
        "gancore/methods/fastgan/loss.py",
        "_margin_hinge(-logits_fake)",
        "_margin_hinge(logits_fake)",
    ),
    Mutation(
        "fastgan_no_sle",
        "FastGAN: SLE removed from G's forward pass",
        "gancore/methods/fastgan/networks.py",
        "x = self.sle[str(s)](feats[s // 16], x)",
        "x = x",
    ),
    Mutation(
        "fastgan_clean_reals",
        "FastGAN: DiffAugment dropped on the real images only",
        "gancore/methods/fastgan/loss.py",
        "real_big = self._augment(real)",
        "real_big = real",
    ),
    Mutation(
        "inrpatch_mirrored_teacher",
        "patch INR: teacher rendered at mirrored coordinates in the structure loss",
        "gancore/methods/inrpatch/loss.py",
        "target = self.teacher.synthesize(z, F.avg_pool2d(coords, 2))",
        "target = self.teacher.synthesize(z, F.avg_pool2d(coords.flip(-1), 2))",
    ),
    Mutation(
        "dwt_synthesis_filters",
        "wavelet codec: synthesis with the analysis filters",
        "gancore/compress/dwt.py",
        "_, _, lo, hi = _bank(wavelet, low)",
        "lo, hi, _, _ = _bank(wavelet, low)",
    ),
    Mutation(
        "ledger_forward_only",
        "FLOP ledger: the step's backward runs outside the counter (forward passes only; counted "
        "right when a test calls PhaseFlops)",
        "gancore/training/step.py",
        "            scaler.scale(loss / n).backward()",
        "            with torch.utils._python_dispatch._disable_current_modes():\n"
        "                scaler.scale(loss / n).backward()",
    ),
    Mutation(
        "step_loss_not_averaged_over_micro_batches",
        "Trainer step: each micro-batch's loss backpropagated whole, not / n_streams (one "
        "micro-batch: no change)",
        "gancore/training/step.py",
        "            scaler.scale(loss / n).backward()",
        "            scaler.scale(loss).backward()",
    ),
    Mutation(
        "ema_rampup_ignored_by_the_step",
        "EMA: the step updates G_ema without the ramp-up (ema_beta_at called directly keeps it)",
        "gancore/training/step.py",
        "beta = ema_beta_at(t.ema_beta, t.batch, n_img + t.batch, t.ema_rampup)",
        "beta = ema_beta_at(t.ema_beta, t.batch, n_img + t.batch, 0.0)",
    ),
    Mutation(
        "ledger_every_phase_every_step",
        "FLOP ledger: the Trainer charges every phase each step, lazy R1 included at steps it "
        "skips (each phase's own count is right)",
        "gancore/training/trainer.py",
        "s.flops += self.step.step_flops",
        "s.flops += sum(self.step.flops.per_run.values())",
    ),
    Mutation(
        "resume_streams_cursor_reset",
        "resume: with several micro-batch streams, each stream's data cursor starts afresh (one "
        "stream's is restored)",
        "gancore/training/checkpointer.py",
        'data.cursors[k] = Cursor(stream["epoch"], stream["pos"])',
        "data.cursors[k] = Cursor()",
    ),
    Mutation(
        "resume_streams_rng_fresh",
        "resume: with several micro-batch streams, each stream's RNG starts afresh (the global "
        "RNG is restored)",
        "gancore/training/checkpointer.py",
        "states[k] = {d: stream.get(d, v) for d, v in states[k].items()}",
        "states[k] = dict(states[k])",
    ),
    Mutation(
        "r1_lazy_factor_dropped_by_spec",
        "PixelFolder, CIPS: the spec builds the loss without lazy R1's x r1_interval "
        "(StyleGAN2Loss called directly keeps it)",
        "gancore/methods/stylegan2_family.py",
        'nets["G"], nets["D"], cfg.r1_gamma, cfg.r1_interval, build_ada(cfg.ada)\n        )',
        'nets["G"], nets["D"], cfg.r1_gamma, 1, build_ada(cfg.ada)\n        )',
    ),
    Mutation(
        "inrpatch_r1_lazy_factor_dropped",
        "patch INR: its loss built without lazy R1's x r1_interval",
        "gancore/methods/inrpatch/loss.py",
        'super().__init__(nets["G"], nets["D"], cfg.r1_gamma, cfg.r1_interval, build_ada(cfg.ada))',
        'super().__init__(nets["G"], nets["D"], cfg.r1_gamma, 1, build_ada(cfg.ada))',
    ),
    Mutation(
        "fastgan_reals_first_op_only",
        "FastGAN: reals get only the first op of the DiffAugment policy, fakes all of it (a "
        "one-op policy cannot tell)",
        "gancore/methods/fastgan/loss.py",
        "real_big = self._augment(real)",
        'real_big = diff_augment(real, self.policy.split(",")[0])',
    ),
    Mutation(
        "fastgan_recon_term_detached",
        "FastGAN: D's reconstruction term reported in the stats but detached from its loss",
        "gancore/methods/fastgan/loss.py",
        "loss = d_real + d_fake + self.recon_weight * recon_total",
        "loss = d_real + d_fake + self.recon_weight * recon_total.detach()",
    ),
    Mutation(
        "export_g_not_g_ema",
        "train stage: the export writes G's weights as G_ema (save_generator called directly "
        "saves what it is given)",
        "gancore/stage/method.py",
        '{"G_ema": trainer.G_ema, "G_init": trainer.G_init}',
        '{"G_ema": trainer.nets["G"], "G_init": trainer.G_init}',
    ),
    Mutation(
        "decoder_finetune_ragan_sides_swapped",
        "decoder fine-tuning: phase G calls the RaGAN G loss with reals and fakes swapped (the "
        "loss itself stays right)",
        "gancore/twostage/training.py",
        "ragan_g_loss(self.D(real), self.D(fake))",
        "ragan_g_loss(self.D(fake), self.D(real))",
    ),
    Mutation(
        "training_reads_the_eval_split",
        "data split: the shards every training stage reads (train_shards) include the eval split "
        "(shard_paths of one split stays right)",
        "gancore/data/shards.py",
        'paths = shard_paths(shard_dir, "train")\n',
        'paths = shard_paths(shard_dir, "train") + shard_paths(shard_dir, "eval")\n',
    ),
    Mutation(
        "unet_decoder_hv_exchanged_target",
        "wavelet UNet decoder: trained against its targets with the H and V bands exchanged",
        "gancore/twostage/archs/unet.py",
        "losses.append(distance(self._details(step, low) / gain, target / gain))",
        "losses.append(distance(self._details(step, low) / gain, target[:, :, [1, 0, 2]] / gain))",
    ),
    Mutation(
        "curve_scores_g_not_g_ema",
        "in-training curve: the Trainer's points score G, not G_ema (the point's own code, called "
        "with G_ema, stays right)",
        "gancore/eval/curve.py",
        "self._add(trainer, trainer.G_ema, n_img, flops, trainer.state.train_sec)",
        'self._add(trainer, trainer.nets["G"], n_img, flops, trainer.state.train_sec)',
    ),
    Mutation(
        "curve_scores_g_ema_unrecalibrated",
        "in-training curve: points score G_ema without the export's BatchNorm recalibration (the "
        "curve's last point is not the network evaluate scores)",
        "gancore/eval/curve.py",
        "G = exported_copy(G, trainer.run.train.bn_recalibration_batches, trainer.run.base.seed)",
        "G = exported_copy(G, 0, trainer.run.base.seed)",
    ),
)


def scratch_copy(dest: Path) -> None:
    """The working tree's tracked and untracked-but-not-ignored files, copied under `dest`."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def patched(mutation: Mutation, tree: Path) -> str:
    """The mutated text of the file in `tree`; the old text must occur exactly once."""
    path = tree / mutation.file
    if not path.is_file():
        raise SystemExit(
            f"mutation {mutation.name}: {mutation.file} does not exist (moved? edit MUTATIONS)"
        )
    text = path.read_text()
    count = text.count(mutation.old)
    if count != 1:
        raise SystemExit(
            f"mutation {mutation.name}: old text found {count} times in "
            f"{mutation.file}, expected once (edit MUTATIONS): {mutation.old!r}"
        )
    return text.replace(mutation.old, mutation.new)


def failing_tests(tree: Path, tests: tuple[str, ...]) -> list[str]:
    """Node ids of the tests that fail (or error) in `tree`."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *tests]
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise SystemExit(
            f"pytest could not run in {tree} (exit {proc.returncode}):\n{proc.stdout[-3000:]}"
        )
    return sorted(set(re.findall(r"^(?:FAILED|ERROR) (\S+)", proc.stdout, flags=re.M)))


def mutated_failures(m: Mutation, clean: Path, tests: tuple[str, ...]) -> list[str]:
    """The tests that fail in a copy of the `clean` tree with `m` applied (the copy is removed)."""
    tree = clean.parent / m.name
    shutil.copytree(clean, tree)
    (tree / m.file).write_text(patched(m, tree))
    failed = failing_tests(tree, tests)
    print(f"{m.name}: {len(failed)} failing", flush=True)
    shutil.rmtree(tree)
    return failed


def table(rows: list[tuple[Mutation, list[str]]], tests: tuple[str, ...]) -> str:
    lines = [
        f"Tests run: `{' '.join(tests)}` (`python -m scripts.mutations`).",
        "",
        "| mutation | file | tests that fail |",
        "|---|---|---|",
    ]
    for m, failed in rows:
        cell = "<br>".join(f"`{t}`" for t in failed[:MAX_LISTED]) or "**none (survives)**"
        if len(failed) > MAX_LISTED:
            cell += f"<br>and {len(failed) - MAX_LISTED} more"
        lines.append(f"| {m.what} | `{m.file}` | {cell} |")
    return "\n".join(lines)


def write_doc(body: str) -> None:
    """Replace the text between the markers in docs/testing.md (the markers must be there)."""
    text = DOC.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{DOC} lacks the markers {BEGIN} / {END}")
    head, rest = text.split(BEGIN, 1)
    DOC.write_text(f"{head}{BEGIN}\n{body}\n{END}{rest.split(END, 1)[1]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="mutation names (default: all)")
    ap.add_argument("--tests", nargs="*", default=list(TESTS), help="test paths to run")
    ap.add_argument("--jobs", type=int, default=1, help="mutations tested at once")
    ap.add_argument(
        "--no-write", action="store_true", help="print the table, leave docs/testing.md as it is"
    )
    args = ap.parse_args(argv)
    names = {m.name for m in MUTATIONS}
    unknown = set(args.only or ()) - names
    if unknown:
        raise SystemExit(f"unknown mutations {sorted(unknown)}; known: {sorted(names)}")
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    tests = tuple(args.tests)
    with tempfile.TemporaryDirectory(prefix="gancore-mutations-") as tmp:
        clean = Path(tmp) / "clean"
        scratch_copy(clean)
        for m in chosen:  # every patch must apply before anything runs
            patched(m, clean)
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            baseline = pool.submit(failing_tests, clean, tests)
            results = list(pool.map(lambda m: mutated_failures(m, clean, tests), chosen))
        if baseline.result():
            raise SystemExit(f"these tests fail without any mutation: {baseline.result()}")
        rows = list(zip(chosen, results))
    body = table(rows, tests)
    print(body)
    if not args.no_write:
        write_doc(body)
    return 0 if all(failed for _, failed in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
