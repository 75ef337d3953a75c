import os

from piccolo.conf.apps import AppConfig, table_finder

APP_CONFIG = AppConfig(
    app_name="backend",
    migrations_folder_path=os.path.join(os.path.dirname(__file__), "piccolo_migrations"),
    # Every table declared in backend.tables, so a new one cannot be left out of migrations.
    table_classes=table_finder(modules=["backend.tables"], exclude_imported=True),
    migration_dependencies=["tenants.piccolo_app"],
)
