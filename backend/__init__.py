"""The service: app factory, settings, the invoice book, ingest and background jobs."""

import os

# Piccolo resolves each table's engine lazily through this module; setting it here means
# every entry point (CLI, app, worker, tests) binds to DATABASE_URL without a stray
# piccolo_conf.py at the repository root.
os.environ.setdefault("PICCOLO_CONF", "backend.piccolo_conf")
