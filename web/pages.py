"""Small HTML pages of the app: the bilingual sign-in page, and refusals a browser sees as a page.

Chinese first with an English toggle (:mod:`web.i18n`); no script or style from off the host.
"""
from __future__ import annotations

import html
from urllib.parse import quote

from .i18n import attrs, bi, head_tags

_STYLE = """body{font:15px/1.5 "Noto Sans CJK SC","WenQuanYi Micro Hei",system-ui,sans-serif;max-width:30em;
margin:12vh auto;padding:0 1em;color:#222}h1{font-size:1.5em;margin-bottom:.2em}
input{width:100%;box-sizing:border-box;padding:.5em;font:inherit;margin:.4em 0}
button[type=submit]{padding:.5em 1.2em;font:inherit}.err{color:#a00}.code{color:#888;font-size:.9em}
a.go{display:inline-block;margin-top:1em}"""


def _page(title_zh: str, title_en: str, body: str, asset_prefix: str) -> str:
    return (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{html.escape(title_zh)} · {html.escape(title_en)}</title><link rel="icon" href="data:,">'
            f"{head_tags(asset_prefix)}<style>{_STYLE}</style></head><body>{body}</body></html>")


_SIGN_IN_FAILED = ("登录失败：密钥无效、已撤销或已过期。", "Sign-in failed.")


def login_page(next_path: str, *, csrf: str, error: str | None = None,
               summary: tuple[str, str] = _SIGN_IN_FAILED, asset_prefix: str = "/map/static") -> str:
    """The sign-in form; ``csrf`` goes back in a hidden field (double submit with its cookie);
    ``error`` (the library's English message) is shown under the (Chinese, English) ``summary``."""
    err = ""
    if error is not None:
        err = (f'<p class="err" id="login-error">{bi(*summary)}'
               f'<br><span class="code">{html.escape(error)}</span></p>')
    body = (f'<h1>{bi("市中区网格化社会管理", "Shizhong District grid management")}</h1>'
            f'<p id="login-intro">{bi("请使用 API 密钥登录指挥中心地图。", "Sign in with your API key.")}</p>{err}'
            f'<form method="post" action="/login"><label for="key">{bi("API 密钥", "API key")}</label>'
            f'<input id="key" name="key" type="password" autocomplete="off" placeholder="gg_…" autofocus required>'
            f'<input type="hidden" name="next" value="{html.escape(next_path)}">'
            f'<input type="hidden" name="csrf" value="{html.escape(csrf)}">'
            f'<button type="submit" {attrs("登录", "Sign in")}>登录</button></form>')
    return _page("登录", "Sign in", body, asset_prefix)


# what each refusal says to a person, in both languages
_REFUSALS = {
    401: ("需要登录", "Sign-in required", "请先登录，或者您的会话已过期。", "Sign in first, or your session has expired."),
    403: ("无权访问", "Not allowed", "您的角色不能查看此页面。", "Your role may not open this page."),
    404: ("未找到", "Not found", "没有这个对象，或者它不在您的辖区范围内。",
          "There is no such object, or it lies outside your scope."),
}


def refusal_page(status: int, detail: str, path: str, *, asset_prefix: str = "/map/static") -> str:
    """A 401/403/404 as a page for a browser (API clients keep the problem+json body)."""
    title_zh, title_en, text_zh, text_en = _REFUSALS[status]
    if status == 401:
        link = (f'<a class="go" href="/login?next={html.escape(_quote(path))}">'
                f'{bi("去登录", "Sign in")}</a>')
    else:
        link = f'<a class="go" href="/map">{bi("返回地图", "Back to the map")}</a>'
    body = (f'<h1 id="refusal" data-status="{status}">{bi(title_zh, title_en)} <span class="code">{status}</span></h1>'
            f'<p>{bi(text_zh, text_en)}</p><p class="code" id="refusal-detail">{html.escape(detail)}</p>{link}')
    return _page(title_zh, title_en, body, asset_prefix)


def _quote(path: str) -> str:
    # only a same-site path goes back into the link
    return quote(path if path.startswith("/") and not path.startswith("//") else "/map", safe="/")
