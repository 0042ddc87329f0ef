"""`python -m tests.fakes.inventree`: serve the stand-in for the demo."""

from __future__ import annotations

import argparse
import json

from ..http import serve_until_interrupted
from .server import FakeInvenTree, seed_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="InvenTree stand-in (demo/tests only)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18000)
    parser.add_argument("--seed", choices=["none", "demo"], default="demo")
    parser.add_argument("--token")
    args = parser.parse_args(argv)
    fake = FakeInvenTree(args.host, args.port, token=args.token)
    ids = seed_demo(fake) if args.seed == "demo" else {}
    return serve_until_interrupted(fake, json.dumps({"url": fake.base_url, "token": fake.token, **ids}))


if __name__ == "__main__":
    raise SystemExit(main())
