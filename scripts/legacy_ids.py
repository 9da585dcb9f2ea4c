"""Write suite/legacy_ids.json: for every cell of sweeps/*.yaml whose method parameters spell out a default,
its canonical id -> the id it was run under (parameters hashed as written, the rule before canonical ids).

    python scripts/legacy_ids.py           # rewrite the table (only ever needed for cells committed before the rule)
    python scripts/legacy_ids.py --check   # exit 1 if a cell of sweeps/ would change id

Entries already in the table are kept: a grid edited later must not rename its old cells.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from suite import config
from suite.sweep.grid import load_grid

ROOT = Path(__file__).resolve().parents[1]


def _scan() -> dict[str, str] | None:
    found: dict[str, str] = {}
    for path in sorted((ROOT / "sweeps").glob("*.yaml")):
        for cell in load_grid(path).cells:
            cfg = cell.config
            written, canonical = config.cell_id(cfg, written=True), config.cell_id(cfg, legacy=False)
            if written != canonical:
                if found.get(canonical, written) != written:
                    print(f"{path.name}: {cfg.name}: two committed cells mean the same ({written}, "
                          f"{found[canonical]})", file=sys.stderr)
                    return None
                found[canonical] = written
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    table = json.loads(config._LEGACY_IDS_FILE.read_text()) if config._LEGACY_IDS_FILE.exists() else {}
    # A stage's config names its parent's directory, so its written id depends on the parent's id: repeat with the
    # table found so far until no id moves (2-3 passes for the 3-stage chains).
    found: dict[str, str] = {}
    for _ in range(10):
        config._legacy_ids = {**table, **found}
        new = _scan()
        if new is None:
            return 1
        if new == found:
            break
        found = new
    missing = {c: w for c, w in found.items() if table.get(c) != w}
    if args.check:
        for c, w in missing.items():
            print(f"cell {w} would become {c}", file=sys.stderr)
        return 1 if missing else 0
    table.update(found)
    config._LEGACY_IDS_FILE.write_text(json.dumps(dict(sorted(table.items())), indent=0) + "\n")
    print(f"{config._LEGACY_IDS_FILE}: {len(table)} entries ({len(missing)} new)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
