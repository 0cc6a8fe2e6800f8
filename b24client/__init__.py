"""Framework-free Bitrix24 REST client (see docs/architecture.md)."""
