"""Browser tests (a package, so its conftest does not take the place of tests/conftest.py as ``conftest``
for the modules that import helpers from it)."""
