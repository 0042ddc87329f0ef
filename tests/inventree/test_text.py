"""Text the real InvenTree accepts: the client's cleaning (orchestration/inventree/text.py) against
the server's rule as recorded in tests/contracts/inventree/CONTRACT.md "Text sanitising" and
transcripts 70-74 (the stand-in applies the same rule with the server's own cleaner, nh3)."""

import pytest
from hypothesis import given, settings, strategies as st

from orchestration.inventree.client import InvenTreeClient
from orchestration.inventree.text import clean_line, clean_notes
from tests.fakes.inventree import clean_text


def accepted(field: str, value: str) -> tuple[bool, str]:
    data = {field: value}
    return clean_text(data, (field,)) is None, data[field]


# Markup-heavy alphabet: the characters the server's cleaner cares about, plus ordinary text.
PIECES = list("<>&;/!?#x ab1-\n\t\"'") + ["amp", "lt", "gt", "&amp;", "&#60;", "🚢", "日"]
TEXT = st.lists(st.sampled_from(PIECES), max_size=20).map("".join) | st.text(max_size=40)


@settings(max_examples=1500, derandomize=True, deadline=None)
@given(TEXT)
def test_cleaned_text_is_always_accepted_and_stored_exactly(raw):
    for field in ("name", "description", "IPN", "batch"):
        ok, stored = accepted(field, clean_line(raw, 100))
        assert ok, (raw, clean_line(raw, 100))
        assert stored == clean_line(raw, 100)  # nothing more for the server to strip
    ok, stored = accepted("notes", clean_notes(raw))
    assert ok and stored == clean_notes(raw)


@pytest.mark.parametrize("raw", [
    "a < b > c", "a < b", "a>b", "size<3mm", "<3", "5<10", "Fish & chips", "Fish &chips",
    "\"quotes\" 'single'", "back\\slash / fwd/slash", "Benchy 🚢 boat éè ü", "**x** _y_ `z` [l](http://e.com)",
    "Odd2 🦆 \"quoted\" it's a/b\\c & ünïcødé 日本語 100%",  # 70u: a real Bambuddy print name
])
def test_what_the_server_stores_as_is_is_left_exactly(raw):
    assert accepted("name", raw) == (True, raw)  # the stand-in agrees with the transcript
    assert clean_line(raw) == raw


@pytest.mark.parametrize("raw, expected", [
    ("Holder <tag>", "Holder < tag>"),            # the poison print of issue 14
    ("Benchy <b>bold</b>", "Benchy < b>bold< /b>"),
    ("a<b", "a< b"),
    ("Fish &amp; chips", "Fish & chips"),          # what the user meant
    ("a &lt; b", "a < b"),
    ("x <!-- c --> y", "x < !-- c --> y"),
    ("line1\nline2\tTab", "line1 line2 Tab"),
    ("  padded name  ", "padded name"),
])
def test_refused_text_becomes_the_closest_accepted_text(raw, expected):
    assert not accepted("name", raw)[0] or raw.strip() != raw or "\n" in raw  # refused or altered by the server
    assert clean_line(raw) == expected
    assert accepted("name", expected) == (True, expected)


def test_notes_keep_markdown_and_newlines():
    raw = "Job **1234** on X1C-01\nline 2: a < b & c 🚢\n\n- used 12.37 g"  # 74e
    assert clean_notes(raw) == raw
    assert accepted("notes", clean_notes("done <b>ok</b> [x](javascript:alert(1))"))[0]


def test_client_creates_parts_and_stock_with_names_the_server_refuses(inventree):
    client = InvenTreeClient(inventree.base_url, inventree.token, retries=0)
    part = client.create_part(name="Holder <tag>", ipn="BMB-holder-tag", description="3D printed Holder <tag>",
                              category=inventree.ids["INVENTREE_PART_CATEGORY_ID"])
    assert part.name == "Holder < tag>"
    item = client.create_stock_item(part=part.pk, quantity=1, location=None, status=10,
                                    batch="mqtt-S1-lan:1:<x>", notes="Printed <b>ok</b> &amp; done")
    assert [s.pk for s in client.find_stock_by_batch("mqtt-S1-lan:1:<x>")] == [item.pk]
    assert inventree.stock_items[item.pk]["notes"] == "Printed < b>ok< /b> & done"
