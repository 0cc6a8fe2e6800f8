"""Find portals and calls from whatever the vendor has in hand: a phone number in any spelling, our call id,
Bitrix24's CALL_ID, the PBX's call id, a member_id or a domain."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from django.db.models import Q

from calls.models import Call
from portals.models import Portal

MAX_RESULTS = 100
# The significant digits of a number without its country code or trunk prefix (+7 916…, 8 916…, 916…).
NATIONAL_DIGITS = 10
MIN_PHONE_DIGITS = 6


@dataclass
class SearchResult:
    query: str
    portals: list[Portal] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    matched_as: list[str] = field(default_factory=list)


def search(query: str) -> SearchResult:
    q = query.strip()
    result = SearchResult(q)
    if not q:
        return result

    portals = Portal.objects.filter(Q(member_id=q) | Q(domain__icontains=q)).order_by("domain")[:MAX_RESULTS]
    result.portals = list(portals)
    if result.portals:
        result.matched_as.append("portal")

    call_filter = Q(b24_call_id=q) | Q(pbx_call_id=q)
    try:
        call_filter |= Q(uuid=uuid.UUID(q))
    except ValueError:
        pass
    by_id = list(Call.objects.filter(call_filter).select_related("portal", "connection").order_by("-created_at")
                 [:MAX_RESULTS])
    if by_id:
        result.matched_as.append("call id")
    digits = re.sub(r"\D", "", q)
    by_phone: list[Call] = []
    if len(digits) >= MIN_PHONE_DIGITS and not by_id and re.fullmatch(r"[\d\s()+\-.]+", q):
        tail = digits[-NATIONAL_DIGITS:]
        by_phone = list(Call.objects.filter(Q(client_number__endswith=tail) | Q(line_number__endswith=tail))
                        .select_related("portal", "connection").order_by("-created_at")[:MAX_RESULTS])
        if by_phone:
            result.matched_as.append("phone number")
    result.calls = by_id + by_phone
    return result
