"""Chinese first, English on a toggle: the server half of ``static/i18n`` (lang.js, lang.css).

A bilingual label is written once as two spans; the page's stylesheet shows the Chinese one
unless the reader switched to English (kept in the browser for the next page).
"""
from __future__ import annotations

import html

#: the shared script and stylesheet, relative to the static prefix (both tiny, loaded in <head>)
LANG_JS = "i18n/lang.js"
LANG_CSS = "i18n/lang.css"


def bi(zh: str, en: str) -> str:
    """Both languages as markup (escaped); CSS shows one."""
    return (f'<span class="gg-zh" lang="zh-CN">{html.escape(zh)}</span>'
            f'<span class="gg-en" lang="en">{html.escape(en)}</span>')


def attrs(zh: str, en: str, name: str = "") -> str:
    """``data-zh``/``data-en`` attributes for text that holds no markup (an option, a placeholder)."""
    suffix = f"-{name}" if name else ""
    return f'data-zh{suffix}="{html.escape(zh)}" data-en{suffix}="{html.escape(en)}"'


def head_tags(asset_prefix: str) -> str:
    prefix = asset_prefix.rstrip("/")
    return (f'<link rel="stylesheet" href="{prefix}/{LANG_CSS}"/>'
            f'<script src="{prefix}/{LANG_JS}"></script>')
