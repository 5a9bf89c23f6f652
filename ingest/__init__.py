"""Ingest: sources, planning, the Dask runner and run reports (see DESIGN.md)."""
