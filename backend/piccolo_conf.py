"""Piccolo finds the engine and the apps here (PICCOLO_CONF=backend.piccolo_conf)."""

from piccolo.conf.apps import AppRegistry

from backend.database import engine_for
from backend.settings import Settings

DB = engine_for(Settings.from_env())

APP_REGISTRY = AppRegistry(apps=["tenants.piccolo_app", "backend.piccolo_app"])
