"""Stage `builtin`: build the offline demo set from CC0/public-domain photographs in
scikit-image."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gancore.data.builtin import SOURCES_FILE, build_builtin
from gancore.params import load_params
from gancore.stage.runtime import record_stage, run_main, stage_parser

PARAMS = ["base.seed", "builtin", "track"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser(__doc__)
    parser.add_argument("--out", default="data/builtin", help="output folder of PNG files")
    args = parser.parse_args(argv)
    p = load_params(args.params, PARAMS)
    summary = build_builtin(
        args.out, n_img=p["builtin"].n_img, side_px=p["builtin"].side_px, seed=p["base.seed"]
    )
    print(f"[builtin] {summary}")
    record_stage(
        "builtin",
        p,
        args.params,
        {},
        {"n_img": summary["n_img"]},
        [Path(args.out) / SOURCES_FILE],
        builtin_fingerprint=summary["fingerprint"],
    )
    return 0


if __name__ == "__main__":
    run_main(main)
