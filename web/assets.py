"""What every page shares: the vendored scripts and stylesheets, and the check that a page
loads nothing from off the serving host."""
from __future__ import annotations

import re
from pathlib import Path

# served by the API at /map/static, inlined into the standalone incident page
STATIC_DIR = Path(__file__).resolve().parent / "static"

_ASSET_RE = re.compile(r"""<(?:script|link|img)\b[^>]*?\b(?:src|href)\s*=\s*["']?((?:https?:)?//[^"'\s>]+)""",
                       re.IGNORECASE)


def external_asset_urls(page: str) -> list[str]:
    """Script/stylesheet/image URLs in ``page`` that point off the serving host."""
    return _ASSET_RE.findall(page)
