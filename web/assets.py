"""What every page shares: the check that it loads nothing from off the serving host."""
from __future__ import annotations

import re

_ASSET_RE = re.compile(r"""<(?:script|link|img)\b[^>]*?\b(?:src|href)\s*=\s*["']?((?:https?:)?//[^"'\s>]+)""",
                       re.IGNORECASE)


def external_asset_urls(page: str) -> list[str]:
    """Script/stylesheet/image URLs in ``page`` that point off the serving host."""
    return _ASSET_RE.findall(page)
