"""The interactive API docs (Scalar at /schema, Swagger UI at /schema/swagger), served whole by
the app.

Litestar's render plugins load their scripts, styles, favicon and fonts from CDNs by default,
so on a network without internet (an agency's locked-down one) the page stays blank. The
files come instead from npm packages vendored at install time by `infra/api-docs-ui.sh`
(versions and checksums pinned there) and are served under `STATIC_PATH`.
"""

from __future__ import annotations

from pathlib import Path

import structlog
from litestar.openapi.plugins import (
    OpenAPIRenderPlugin,
    ScalarRenderPlugin,
    SwaggerRenderPlugin,
)
from litestar.router import Router
from litestar.static_files import create_static_files_router

log = structlog.get_logger("kravlab")

FILES = Path(__file__).parent / "api_docs_vendor"
STATIC_PATH = "/schema/static"
_SCALAR = f"{STATIC_PATH}/scalar"
_SWAGGER = f"{STATIC_PATH}/swagger-ui"
_FAVICON = f"<link rel='icon' type='image/png' href='{_SWAGGER}/favicon-32x32.png'>"
# Scalar's own defaults that would reach out: its web fonts and its telemetry.
_SCALAR_OPTIONS = {"withDefaultFonts": False, "telemetry": False}


def render_plugins() -> list[OpenAPIRenderPlugin]:
    """Scalar first, so it answers at /schema itself."""
    if not (FILES / ".versions").exists():
        log.warning("api docs files missing: run infra/api-docs-ui.sh", directory=str(FILES))
    return [
        ScalarRenderPlugin(
            js_url=f"{_SCALAR}/standalone.js",
            css_url=f"{_SCALAR}/style.css",
            options=_SCALAR_OPTIONS,
            favicon=_FAVICON,
        ),
        SwaggerRenderPlugin(
            path="/swagger",
            js_url=f"{_SWAGGER}/swagger-ui-bundle.js",
            css_url=f"{_SWAGGER}/swagger-ui.css",
            standalone_preset_js_url=f"{_SWAGGER}/swagger-ui-standalone-preset.js",
            favicon=_FAVICON,
        ),
    ]


def static_files() -> Router:
    return create_static_files_router(
        path=STATIC_PATH,
        directories=[FILES],
        opt={"public": True},
        include_in_schema=False,
        name="api-docs-files",
    )
