"""Issue 15: one join defect must not stop every push, silently. When silver gives one batch (the
stock item's natural key) to two prints — what the failing dbt test at_most_one_per... reports —
those two wait in needs_attention with the reason and every other print is stocked; they go on
by themselves once silver is right again. InvenTree stand-in per tests/contracts/inventree/."""

import sqlite3

from dagster import materialize

from orchestration.inventree.assets import inventree_stock
from orchestration.inventree.resources import InvenTreeResource
from orchestration.bambuddy import BambuddyResource
from orchestration.ledger import utc_now
from orchestration.silver import SilverPrint

from .conftest import ledger_rows

COLUMNS = [*SilverPrint.__dataclass_fields__, "silver_built_at"]


def silver(db, rows):
    conn = sqlite3.connect(db)
    conn.execute(f"CREATE TABLE IF NOT EXISTS silver_print_jobs ({', '.join(COLUMNS)})")
    conn.execute("DELETE FROM silver_print_jobs")
    for print_id, batch, name in rows:
        row = dict(print_id=print_id, source="mqtt", printer_serial="S1", printer_name="X1C", bambuddy_archive_id=None,
                   run_no=None, status="completed", is_success=1, name=name, filename=None, part_key=name.lower(),
                   ipn=f"BMB-{name.lower()}", description=f"3D printed {name}", weight_g=None, print_time_s=60,
                   quantity=1, started_at=None, finished_at="2026-11-20T11:00:00Z", batch=batch, fail_reason=None,
                   silver_built_at=utc_now())
        conn.execute(f"INSERT INTO silver_print_jobs VALUES ({', '.join('?' * len(COLUMNS))})",
                     [row[c] for c in COLUMNS])
    conn.commit()
    conn.close()


def push():
    result = materialize([inventree_stock], resources={"inventree": InvenTreeResource(), "bambuddy": BambuddyResource()})
    assert result.success
    return result


def test_two_prints_claiming_one_batch_wait_and_the_others_go_on(env, inventree):
    silver(env / "warehouse.db", [("mqtt:S1:1", "mqtt-S1-1", "Benchy"), ("mqtt:S1:2", "mqtt-S1-1", "Clip"),
                                  ("mqtt:S1:3", "mqtt-S1-3", "Vase")])
    push()
    rows = {r["print_id"]: r for r in ledger_rows(env)}
    assert [s["batch"] for s in inventree.stock_items.values()] == ["mqtt-S1-3"]
    for held, other in (("mqtt:S1:1", "mqtt:S1:2"), ("mqtt:S1:2", "mqtt:S1:1")):
        assert rows[held]["state"] == "needs_attention" and other in rows[held]["reason"]
    silver(env / "warehouse.db", [("mqtt:S1:1", "mqtt-S1-1", "Benchy"), ("mqtt:S1:3", "mqtt-S1-3", "Vase")])
    push()  # silver is right again: the print whose row did not change goes on too
    assert sorted(s["batch"] for s in inventree.stock_items.values()) == ["mqtt-S1-1", "mqtt-S1-3"]
    assert {r["print_id"]: r["state"] for r in ledger_rows(env)}["mqtt:S1:1"] == "synced"
