"""The PBX API (shared/docs/pbx-api.md): thin DRF views over calls.pbx_* services."""
