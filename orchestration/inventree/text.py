"""Text that InvenTree accepts, kept as close to what the user wrote as the server allows.

The server (CONTRACT.md "Text sanitising", transcripts 70-74) runs every name, description, IPN,
batch and notes through an HTML cleaner and refuses the value (400 "Remove HTML tags from this
value") when anything would be removed: a tag or comment (`<` followed by a letter, `/`, `!` or
`?`) or an HTML entity (`&amp;`, `&lt;`, legacy ones without `;` too), and even a no-break space. `a < b > c`, `size<3mm`, a
bare `&`, quotes, emoji and CJK are stored exactly; one-line fields lose `\\n`/`\\t`.

So: entities are decoded to the character they stand for (`Fish &amp; chips` -> `Fish & chips`,
what the user meant), a `<` that would open markup gets a space after it (`Holder <tag>` ->
`Holder < tag>`), control characters become spaces in one-line fields, outer spaces go.
"""

from __future__ import annotations

import html
import re

# `<` that an HTML tokenizer reads as the start of a tag, end tag, comment or declaration.
_MARKUP_OPEN = re.compile(r"<(?=[A-Za-z/!?])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_LINE_BREAKS = re.compile(r"[\r\n\t]+")
_JS_LINK = re.compile(r"\]\(\s*javascript:", re.IGNORECASE)


def _defuse(text: str) -> str:
    # Decode until stable: `&amp;amp;` is two layers of escaping, and each layer is refused.
    for _ in range(5):
        decoded = html.unescape(text)
        if decoded == text:
            break
        text = decoded
    if html.unescape(text) != text:  # still a reference after five layers: break every `&`
        text = text.replace("&", "& ")
    # the cleaner writes a no-break space back as `&nbsp;`, so the server refuses it: a plain space
    return _MARKUP_OPEN.sub("< ", text).replace("\xa0", " ")


def clean_line(text: str | None, limit: int | None = None) -> str:
    """A one-line field (name, description, IPN, batch): what the server stores, never refused."""
    value = _defuse(_LINE_BREAKS.sub(" ", text or ""))
    value = _CONTROL.sub(" ", value).strip()
    if limit is not None and len(value) > limit:
        value = value[:limit].rstrip()
    return value


def clean_notes(text: str | None) -> str:
    """Markdown notes: newlines kept; markup and `javascript:` links defused."""
    value = _CONTROL.sub(" ", _defuse(text or "")).strip()
    return _JS_LINK.sub("](javascript :", value)
