"""Flaky stand-ins: 20 % of all requests to InvenTree and Bambuddy answer 500/502/503, reset the
connection, stall past the client timeout or answer slowly, over 100 prints. After the retries
(in the client, in place by the queue, and in later runs) every print is in stock exactly once
and every archive is linked.
Contracts: tests/contracts/inventree/CONTRACT.md, tests/contracts/bambuddy/CONTRACT.md
(status codes and error bodies of the real servers; the faults are injected on top of them)."""

import pytest

from tests.orchestration.conftest import ledger_rows, run_sync

PRINTS = 100
MODELS = 20
# status answers are the most common fault; resets, stalls and slow answers are mixed in
KINDS = ("status", "status", "status", "drop", "stall", "slow")


@pytest.fixture
def flaky_env(env, bambuddy, monkeypatch):
    monkeypatch.setenv("BAMBUDDY_BASE_URL", bambuddy.base_url)
    monkeypatch.setenv("HTTP_TIMEOUT_SECONDS", "0.5")
    monkeypatch.setenv("HTTP_RETRY_BACKOFF_SECONDS", "0.01")
    return env


def test_100_prints_through_20_percent_faults_land_once(flaky_env, bambuddy, inventree):
    archives = []
    for n in range(PRINTS):
        model = f"Model {n % MODELS}"
        archive = bambuddy.add_archive(printer_id=1, print_name=model, filament_used_grams=10 + n % 7,
                                       print_time_seconds=600 + n, content_hash=f"hash-{n % MODELS}")
        bambuddy.add_run(archive["id"], status="completed")
        archives.append(archive)
    for fake, seed in ((inventree, 11), (bambuddy, 12)):
        fake.fail_rate(0.2, seed=seed, kinds=KINDS, stall=0.8, slow=0.1)

    runs = 0
    while runs < 12:
        runs += 1
        run_sync()
        rows = ledger_rows(flaky_env)
        if len(rows) == PRINTS and all(r["state"] == "synced" and r["link_state"] == "written" for r in rows):
            break
    injected = inventree.injected + bambuddy.injected
    assert injected > 100, "the faults really happened"
    # A step is tried again in place on a 5xx or a lost answer, so the faults cost seconds inside
    # a run rather than whole runs: at most one more run for what still ran out of tries.
    assert runs <= 2, f"{runs} runs for 100 prints at 20 % faults"

    batches = [s["batch"] for s in inventree.stock_items.values()]
    assert len(batches) == len(set(batches)), "no duplicate stock item"
    assert sorted(batches) == sorted(f"bambuddy-{a['id']}" for a in archives), "no lost print"
    ipns = [p["IPN"] for p in inventree.parts.values()]
    assert sorted(ipns) == sorted({f"BMB-hash-{n}" for n in range(MODELS)}), "one part per model"
    parts = {p["IPN"]: p["pk"] for p in inventree.parts.values()}
    for n, archive in enumerate(archives):
        url = bambuddy.archives[archive["id"]]["external_url"]
        assert url == f"http://inventree.example/web/part/{parts[f'BMB-hash-{n % MODELS}']}/"
    # two parameters per part, never a second copy of one
    per_part = {}
    for p in inventree.parameters.values():
        per_part.setdefault(p["model_id"], []).append(p["template"])
    assert all(sorted(t) == sorted(set(t)) and len(t) == 2 for t in per_part.values())
    assert len(per_part) == MODELS


def test_bambuddy_401_fails_fast_names_the_key_and_writes_nothing(flaky_env, bambuddy, inventree, monkeypatch):
    bambuddy.enable_auth()
    bambuddy.create_api_key()
    monkeypatch.setenv("BAMBUDDY_API_KEY", "bb_wrong_key_123456")
    archive = bambuddy.add_archive(printer_id=1, print_name="Benchy", content_hash="hash-b")
    bambuddy.add_run(archive["id"], status="completed")
    result = run_sync()
    assert not result.success
    failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"][0]
    text = str(failure.event_specific_data.error)
    assert "BAMBUDDY_API_KEY" in text and "bb_wrong_key_123456" not in text
    assert bambuddy.count("GET") <= 4, "no retries of a 401"
    assert inventree.count("POST") == 0 and inventree.stock_items == {}
