"""Development helpers that the tests (``tests/``) and the benchmarks (``bench/``) share, so that neither
imports the other: moto's HTTP server, the fault proxy, the botocore-shaped fake client, the canary
values and the figures both hold the package to.

Not shipped: ``[tool.setuptools.packages.find]`` includes ``secretcache*`` only. Imports test-only
dependencies (moto, pytest) where the module that needs them is imported.
"""
