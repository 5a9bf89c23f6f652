"""Ingest: sources, planning, the Dask runner and run reports (see DESIGN.md).

``exashard.ingest(sources, out, ...)`` is the main job; this package is made callable so
that the function and the package share the public name.
"""

import sys
import types


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):  # exashard.ingest(...) -> exashard.ingest.run.ingest(...)
        from .run import ingest

        return ingest(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
