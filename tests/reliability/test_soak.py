"""Soak (issue 14): the automatic loop as users run it — a real dagster-daemon and webserver and
the sync API as processes, default settings — for about three minutes with prints arriving all
along and things going wrong: Bambuddy down (webhooks keep coming), InvenTree 5xx bursts, one
poison print (a thumbnail InvenTree refuses: transcript 61_patch_part_image_invalid), the code
server killed, DAGSTER_HOME wiped and the daemon restarted. The scenario is bench/soak.py's
(`python -m bench.soak` runs it at scale); this test holds it to the issue's targets."""

import pytest

from bench.soak import Soak, targets_met


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_loop_survives_an_afternoon_of_trouble(tmp_path):
    result = Soak(prints=10, printers=2, duration=80, seed=5, work=tmp_path / "soak").run()
    print(result)
    assert result["good"] >= 5 and result["poison"] == 1
    assert result["in_stock_once"] == result["linked"] == result["good"], result
    assert result["duplicates"] == 0 and result["lost"] == 0, result
    assert result["needs_attention"] == 1, result  # the poison print, with its reason
    assert result["startup_runs"] == result["daemon_starts"] == 2, result
    assert result["pending_requests_left"] == 0, result
    assert result["idle_runs"] <= result["daemon_starts"] + 1, result
    # p95 is the benchmark's to report (a shared machine's timing is no test verdict)
    assert targets_met(result) in ([], ["p95_s <= 30"]), result
