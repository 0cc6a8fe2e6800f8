"""The API names connections by their public id (as the PBX API does); calls' settings services use the
database key. The two meet here, scoped to one portal."""

from __future__ import annotations

from typing import Any

from calls.models import PbxConnection
from portals.models import Portal


class ConnectionIds:
    def __init__(self, portal: Portal) -> None:
        rows = PbxConnection.objects.filter(portal=portal).values_list("pk", "public_id")
        self.public = {pk: public for pk, public in rows}
        self.pk = {public: pk for pk, public in rows}

    def to_public(self, pk: Any) -> str | None:
        return self.public.get(pk) if pk is not None else None

    def to_pk(self, public_id: Any) -> Any:
        """The key for a public id of this portal; anything else is passed on unchanged, so the service
        names it as an unknown connection."""
        return self.pk.get(public_id, public_id)

    def publish(self, item: dict[str, Any], key: str = "connection_id") -> dict[str, Any]:
        """A selector's dict with its connection key replaced by the public id."""
        if key in item:
            item = {**item, key: self.to_public(item[key])}
        return item
