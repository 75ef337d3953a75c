import os

from piccolo.conf.apps import AppConfig

from backend.tables import Debtor, IdempotencyRecord, Invoice, InvoiceEvent, Payment

APP_CONFIG = AppConfig(
    app_name="backend",
    migrations_folder_path=os.path.join(os.path.dirname(__file__), "piccolo_migrations"),
    table_classes=[Debtor, Invoice, Payment, InvoiceEvent, IdempotencyRecord],
    migration_dependencies=["tenants.piccolo_app"],
)
