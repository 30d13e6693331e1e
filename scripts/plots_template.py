"""Build .dvc/plots/offline.html, the self-contained page `dvc plots show` fills (.dvc/config
`plots.html_template`): DVC's own page loads Vega from a CDN and is blank offline, this one inlines
the same three libraries DVC's renderer names (vega 5.20.2, vega-lite 5.2.0, vega-embed 6.18.2), so
the page works with no network. Run it only to change the versions:

    npm pack vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2      # the registry's tarballs
    python -m scripts.plots_template vega-5.20.2.tgz vega-lite-5.2.0.tgz vega-embed-6.18.2.tgz

The licences (BSD-3-Clause, University of Washington Interactive Data Lab) go to
.dvc/plots/vega-LICENSES.txt with each tarball's sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tarfile
from pathlib import Path

OUT = Path(".dvc/plots")
PAGE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <title>gancore plots</title>
    <!-- Offline: {names} inlined from their npm tarballs ({licences}). -->
{scripts}
    <style>
        table {{ border-spacing: 15px; }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def _read(archive: Path) -> tuple[str, str, str, str]:
    """(package name@version, minified build, licence text, sha256) of an `npm pack` tarball."""
    with tarfile.open(archive) as tar:
        pkg = json.loads(tar.extractfile("package/package.json").read().decode())
        build = tar.extractfile(f"package/build/{pkg['name']}.min.js").read().decode()
        licence = tar.extractfile("package/LICENSE").read().decode()
    if "</script" in build or "{plot_divs}" in build or "{scripts}" in build:
        raise ValueError(f"{archive}: the build holds text that would break the page")
    sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()
    return f"{pkg['name']}@{pkg['version']}", build, licence, sha256


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "tarballs", nargs=3, type=Path, help="vega, vega-lite, vega-embed (npm pack)"
    )
    args = parser.parse_args(argv)
    parts = [_read(a) for a in args.tarballs]
    scripts = "\n".join(
        f"    <script>/* {name} */\n{build}\n    </script>" for name, build, _, _ in parts
    )
    names = ", ".join(name for name, *_ in parts)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "offline.html").write_text(
        PAGE.format(scripts=scripts, names=names, licences="BSD-3-Clause: vega-LICENSES.txt")
    )
    (OUT / "vega-LICENSES.txt").write_text(
        "".join(
            f"==== {name} (npm tarball sha256 {sha}) ====\n{licence}\n"
            for name, _, licence, sha in parts
        )
    )


if __name__ == "__main__":
    main()
