"""`python -m bench.sync`: the InvenTree push through the real `inventree_stock` asset.

P finished prints over K parts are written to a silver table, then the asset is materialized
in process against the InvenTree stand-in over real HTTP (images off). Then P more prints of the
same, now known, parts; then a rerun with nothing new. Prints one JSON line last:
{"prints", "prints_per_s", "calls_per_print_known_part", "duplicates", "rerun_calls"}
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from dagster import materialize

from orchestration.inventree.assets import inventree_stock
from orchestration.inventree.resources import InvenTreeResource
from orchestration.bambuddy import BambuddyResource
from orchestration.ledger import utc_now
from orchestration.silver import SilverPrint
from tests.fakes.inventree import FakeInvenTree, seed_demo

COLUMNS = [*SilverPrint.__dataclass_fields__, "silver_built_at"]


def write_silver(db: Path, start: int, count: int, parts: int) -> None:
    conn = sqlite3.connect(db)
    conn.execute(f"CREATE TABLE IF NOT EXISTS silver_print_jobs ({', '.join(COLUMNS)})")
    rows = []
    built = utc_now()  # as a dbt build stamps the rows it writes
    for i in range(start, start + count):
        part = i % parts
        ended = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_760_000_000 + i * 60))
        rows.append(dict(print_id=f"mqtt:BENCH:{i}", source="mqtt", printer_serial="BENCH", printer_name="Bench",
                         bambuddy_archive_id=None, run_no=None, status="completed", is_success=1,
                         name=f"Part {part}", filename=f"part-{part}.3mf", part_key=f"part-{part}",
                         ipn=f"BMB-part-{part}", description=f"3D printed Part {part}", weight_g=10.0 + part,
                         print_time_s=600 + part, quantity=1, started_at=ended, finished_at=ended,
                         batch=f"mqtt-BENCH-{i}", fail_reason=None, silver_built_at=built))
    conn.executemany(f"INSERT INTO silver_print_jobs VALUES ({', '.join('?' for _ in COLUMNS)})",
                     [[r[c] for c in COLUMNS] for r in rows])
    conn.commit()
    conn.close()


def push() -> float:
    started = time.perf_counter()
    result = materialize([inventree_stock], resources={"inventree": InvenTreeResource(), "bambuddy": BambuddyResource()})
    if not result.success:
        raise SystemExit("inventree_stock failed")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prints", type=int, default=500)
    parser.add_argument("--parts", type=int, default=50)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp, FakeInvenTree() as fake:
        ids = seed_demo(fake)
        os.environ.update({"DATA_DIR": tmp, "INVENTREE_BASE_URL": fake.base_url, "INVENTREE_TOKEN": fake.token,
                           "INVENTREE_PART_CATEGORY_ID": str(ids["INVENTREE_PART_CATEGORY_ID"]),
                           "INVENTREE_STOCK_LOCATION_ID": str(ids["INVENTREE_STOCK_LOCATION_ID"]),
                           "SYNC_PART_IMAGES": "false"})
        os.environ.pop("BAMBUDDY_BASE_URL", None)
        warehouse = Path(tmp) / "warehouse.db"
        write_silver(warehouse, 0, args.prints, args.parts)
        first_s = push()
        before = len(fake.requests)
        write_silver(warehouse, args.prints, args.prints, args.parts)
        known_s = push()
        known_calls = len(fake.requests) - before
        before = len(fake.requests)
        push()
        rerun_calls = len(fake.requests) - before
        batches = Counter(item["batch"] for item in fake.stock_items.values())
        duplicates = sum(n - 1 for n in batches.values() if n > 1)
        stock = len(fake.stock_items)
    result = {"prints": args.prints, "prints_per_s": round(args.prints / first_s, 1),
              "prints_per_s_known_parts": round(args.prints / known_s, 1),
              "calls_per_print_known_part": round(known_calls / args.prints, 2), "duplicates": duplicates,
              "rerun_calls": rerun_calls, "stock_items": stock}
    print(json.dumps(result))
    return 0 if stock == 2 * args.prints and duplicates == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
