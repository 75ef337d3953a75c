"""The reference-rate table: one row per half-year, unique on the day it applies from."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import UUID, Date, Integer, Timestamptz, Varchar
from piccolo.columns.defaults.date import DateNow
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.defaults.uuid import UUID4
from piccolo.columns.indexes import IndexMethod

ID = "2026-11-23T14:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "reference rates"


def _params(**extra):
    return {
        "null": False,
        "primary_key": False,
        "unique": False,
        "index": False,
        "index_method": IndexMethod.btree,
        "choices": None,
        "db_column_name": None,
        "secret": False,
        **extra,
    }


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="backend", description=DESCRIPTION)
    manager.add_table(
        class_name="ReferenceRate", tablename="reference_rates", schema=None, columns=None
    )
    columns = [
        ("id", "UUID", UUID, _params(default=UUID4(), primary_key=True)),
        ("valid_from", "Date", Date, _params(default=DateNow(), unique=True)),
        ("rate_bp", "Integer", Integer, _params(default=0)),
        ("created_at", "Timestamptz", Timestamptz, _params(default=TimestamptzNow())),
        ("created_by", "Varchar", Varchar, _params(length=80, default="")),
    ]
    for name, class_name, column_class, params in columns:
        manager.add_column(
            table_class_name="ReferenceRate",
            tablename="reference_rates",
            column_name=name,
            db_column_name=name,
            column_class_name=class_name,
            column_class=column_class,
            params=params,
            schema=None,
        )
    return manager
