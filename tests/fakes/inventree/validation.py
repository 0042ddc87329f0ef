"""The server's input checks: the text rule (nh3, "Remove HTML tags from this value") and the
image check on uploads."""

from __future__ import annotations

import io
import re

import nh3
from PIL import Image

from ..http import Response

IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF8")

HTML_REFUSED = ["Remove HTML tags from this value"]
# Fields the server cleans (CONTRACT.md "Text sanitising", transcripts 70-74), in the order it reports them.
PART_TEXT = ("name", "description", "IPN", "notes")
STOCK_TEXT = ("batch", "notes")
MULTILINE = {"notes"}
NON_PRINTABLE = re.compile(r"[\x00-\x1f\x7f]")
JS_LINK = re.compile(r"\]\(\s*javascript:", re.IGNORECASE)


def clean_text(data: dict, fields: tuple[str, ...]) -> Response | None:
    """The server's CleanMixin: nh3 without tags, then &lt; &gt; &amp; turned back; a change in
    length means markup was there -> 400 naming only the first such field (72e). Accepted values
    lose non-printable characters in one-line fields (\\n, \\t: 70m, 71e, 74h) and outer spaces (70n)."""
    for field in fields:
        value = data.get(field)
        if not isinstance(value, str):
            continue
        cleaned = nh3.clean(value, tags=set()).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        if len(cleaned) != len(value):
            return Response(400, {field: HTML_REFUSED})
        if field in MULTILINE and JS_LINK.search(value):
            return Response(400, {"non_field_errors": ["Data contains prohibited markdown content"]})  # 73d
        if field not in MULTILINE:
            data[field] = NON_PRINTABLE.sub("", value).strip()
    return None


def valid_image(content: bytes) -> bool:
    """Django's ImageField check, as the server makes it: Pillow must open and verify the file
    (magic bytes alone are not enough: a corrupt thumbnail is refused, transcript 61)."""
    if not content.startswith(IMAGE_MAGIC):
        return False
    try:
        Image.open(io.BytesIO(content)).verify()
    except Exception:  # Pillow raises many kinds for broken files
        return False
    return True
