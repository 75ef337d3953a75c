"""Tenancy and access: tenants, users, API keys, authentication, roles and the tenant scope."""
