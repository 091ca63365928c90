"""KPI queries: read-only, per community, computed from the fact tables at read time."""
