"""HTTP controllers of the machine API (/api/v1): parse, authorise, call a service."""
