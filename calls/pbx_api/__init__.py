"""The PBX API (docs/pbx-api.md): signed requests, their intake and answers, and thin DRF views over them."""
