"""The dashboard at ``/_emulator/ui``: one server-rendered page, one script and one stylesheet.

The page holds no data of its own: its script reads and changes everything through the control plane's public
endpoints (``/_emulator/...``, the same OpenAPI a user has), so the page is also a proof that the control plane is
complete. Access is the control plane's: loopback clients only, or, with an admin token, the page is served to
anyone (it holds nothing) and its script asks for the token, which it keeps in the tab's ``sessionStorage`` and
sends as ``Authorization: Bearer`` on every control-plane call.

Everything ships in the wheel (templates and static files are package data); no CDN, no build step.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from emulator.control import LoopbackGuard
from emulator.settings import Settings

if TYPE_CHECKING:
    from jinja2 import Template

PATH = "/_emulator/ui"
# the page loads only its own script and stylesheet and talks only to its own origin
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def routes(settings: Settings) -> list[BaseRoute]:
    """``/_emulator/ui`` and what is under it, guarded like the control plane; listed before its mount."""
    from emulator import __version__
    from emulator.providers import PROVIDERS

    providers = [(name, p.title) for name, p in PROVIDERS.items() if settings.provider in (None, name)]

    async def page(request: Request) -> Response:
        root = request.scope.get("root_path", "").removesuffix(PATH)  # inside the mount, it ends with PATH
        html = _template().render(ui=root + PATH, api=root + "/_emulator", providers=providers, version=__version__)
        return HTMLResponse(html, headers=HEADERS)

    static = StaticFiles(packages=[("emulator.dashboard", "static")])
    inner = Router([Route("/", page, methods=["GET", "HEAD"]), Mount("/static", static)], redirect_slashes=False)

    def guarded(app: ASGIApp) -> ASGIApp:
        # with a token the page and its assets are open (they hold no data; every call the script makes asks for
        # the token); without one, other hosts get the control plane's 403
        return app if settings.admin_token else LoopbackGuard(app, None, open_paths=())

    async def to_page(request: Request) -> Response:  # the page is the folder's index: /_emulator/ui/
        return RedirectResponse(request.scope.get("root_path", "") + PATH + "/", status_code=308)

    return [Route(PATH, to_page, methods=["GET", "HEAD"]), Mount(PATH, guarded(inner))]


@functools.cache
def _template() -> Template:
    """Loaded when the page is first asked for: an emulator nobody opens the dashboard of never imports Jinja2
    (``serve`` keeps its start-up short)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("emulator.dashboard", "templates"),
        autoescape=select_autoescape(),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("index.html")
