"""Benchmarks of the renderers client and the mock servers: ``python -m benchmarks.run`` (``nox -s bench``)."""
