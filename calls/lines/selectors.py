"""Which numbers are the portal's company lines.

A company line is a number one of the portal's PBXs declared with ``PUT …/lines`` and still lists.
Only those become Bitrix24 external lines and only those are sent as ``LINE_NUMBER``: a number a PBX
merely used on a call (a callback placed "from" the client's own number, say) is not one.
"""

from __future__ import annotations

from collections.abc import Iterable

from calls.models import PbxLine


def company_lines(portal_id: int, numbers: Iterable[str]) -> frozenset[str]:
    """The numbers among ``numbers`` (normalised) that are company lines of the portal."""
    wanted = {n for n in numbers if n}
    if not wanted:
        return frozenset()
    return frozenset(
        PbxLine.objects.filter(connection__portal_id=portal_id, number__in=wanted, removed_at__isnull=True)
        .values_list("number", flat=True)
    )


def all_company_lines(portal_id: int) -> frozenset[str]:
    """Every company line of the portal."""
    return frozenset(PbxLine.objects.filter(connection__portal_id=portal_id, removed_at__isnull=True)
                     .values_list("number", flat=True))
