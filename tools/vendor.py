"""Refresh the vendored browser libraries under static/vendor/ from the npm registry.

    python3 tools/vendor.py            # the pinned versions below
    python3 tools/vendor.py --latest   # whatever npm calls latest (then update PINNED)

The files are committed, so the product (and its demo on a fresh machine)
needs only Python at run time and never loads a script from the internet.
Today this is Apache ECharts: npm package ``echarts``, file ``dist/echarts.min.js``
with its LICENSE and NOTICE (Apache-2.0), in static/vendor/echarts/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# package: (version, files to copy from the package, target folder)
PINNED = {
    "echarts": ("6.1.0", ["dist/echarts.min.js", "LICENSE", "NOTICE"], "static/vendor/echarts"),
}


def vendor(package: str, version: str, files: list[str], target: Path) -> str:
    """Install ``package@version`` into a temporary folder and copy ``files`` to ``target``."""
    with tempfile.TemporaryDirectory(prefix="vendor-") as tmp:
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefix", tmp, f"{package}@{version}"],
            check=True,
        )
        root = Path(tmp) / "node_modules" / package
        installed = json.loads((root / "package.json").read_text())["version"]
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            shutil.copyfile(root / name, target / Path(name).name)
        (target / "VERSION").write_text(f"{package}@{installed} from the npm registry\n")
    return str(installed)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latest", action="store_true", help="take npm's latest version")
    args = parser.parse_args(argv)
    if shutil.which("npm") is None:
        print("npm is needed to refresh the vendored files (apt-get install npm)", file=sys.stderr)
        return 1
    for package, (version, files, folder) in PINNED.items():
        installed = vendor(package, "latest" if args.latest else version, files, REPO / folder)
        print(f"{package}@{installed} -> {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
