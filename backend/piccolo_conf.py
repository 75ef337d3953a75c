"""Piccolo finds the engine and the apps here (PICCOLO_CONF=backend.piccolo_conf).

`DB` is looked up on use, not built at import: it is whichever engine the process bound
(`backend.database.bind`, called by `create_app(settings)`), so importing this module
neither reads the environment nor touches a database.
"""

from typing import Any

from piccolo.conf.apps import AppRegistry

APP_REGISTRY = AppRegistry(apps=["tenants.piccolo_app", "backend.piccolo_app"])


def __getattr__(name: str) -> Any:
    if name == "DB":
        from backend.database import current

        return current()
    raise AttributeError(name)
