"""A stand-in for InvenTree 1.4 (API 479), built from tests/contracts/inventree/ (CONTRACT.md,
curl and client transcripts, schema.yml): the endpoints this product uses, with the recorded
shapes, validation, error bodies and surprises (duplicate IPNs allowed, case-insensitive IPN and
batch filters, stock create answering a list, invalid stock status silently stored as 10,
parameter unit conversion, both list shapes, trailing-slash 404s).

Run standalone for the demo: `python -m tests.fakes.inventree --port 18000 --seed demo`.
"""

from .server import FakeInvenTree, seed_demo
from .validation import clean_text

__all__ = ["FakeInvenTree", "clean_text", "seed_demo"]
