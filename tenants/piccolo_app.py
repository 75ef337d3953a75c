import os

from piccolo.conf.apps import AppConfig

from tenants.tables import ApiKey, AuditEntry, Tenant, User

APP_CONFIG = AppConfig(
    app_name="tenants",
    migrations_folder_path=os.path.join(os.path.dirname(__file__), "piccolo_migrations"),
    table_classes=[Tenant, User, ApiKey, AuditEntry],
)
