"""Demo tooling (``scripts/demo``): not part of the product; no production package imports it."""
