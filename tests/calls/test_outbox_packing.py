"""The outbox's packing policy (pure): what goes in the next request to Bitrix24, and in which order."""

from __future__ import annotations

from calls.outbox import packing
from calls.outbox.packing import (
    PRIORITY_FINISH,
    PRIORITY_HOUSEKEEPING,
    PRIORITY_LIVE_CARDS,
    PRIORITY_REGISTER,
    Dependency,
    Pending,
    pack,
)

REGISTER = "telephony.externalcall.register"
SHOW = "telephony.externalcall.show"
FINISH = "telephony.externalcall.finish"
LINE = "telephony.externalline.add"


def register(pk: int, call: int, order: float = 0.0, **kw) -> Pending:
    return Pending(pk, call, REGISTER, {"EXTERNAL_CALL_ID": f"x{call}"}, PRIORITY_REGISTER, order=order, **kw)


def show(pk: int, call: int, depends_on: int | None = None, order: float = 0.0) -> Pending:
    params = {"CALL_ID": None if depends_on else f"B{call}", "USER_ID": [1]}
    return Pending(pk, call, SHOW, params, PRIORITY_LIVE_CARDS, depends_on=depends_on, order=order)


def finish(pk: int, call: int, order: float = 0.0) -> Pending:
    return Pending(pk, call, FINISH, {"CALL_ID": f"B{call}", "USER_ID": 1}, PRIORITY_FINISH, order=order)


def ids(result: packing.Packing) -> list[int]:
    return [p.command_id for p in result.commands]


def test_a_lone_command_goes_alone_with_its_params_as_written():
    result = pack([finish(1, call=10)])
    assert ids(result) == [1] and not result.batched
    assert result.commands[0].params == {"CALL_ID": "B10", "USER_ID": 1}


def test_many_commands_go_fifty_to_a_batch():
    result = pack([finish(i, call=i, order=i) for i in range(1, 81)])
    assert result.batched and len(result.commands) == 50
    assert ids(result) == list(range(1, 51))  # oldest first


def test_card_shows_of_live_calls_go_before_registers_then_finishes_then_housekeeping():
    housekeeping = Pending(5, None, "user.get", {"start": 0}, PRIORITY_HOUSEKEEPING, order=0)
    result = pack([housekeeping, finish(4, call=40, order=1), register(3, call=30, order=2),
                   show(2, call=20, order=3)])
    assert ids(result) == [2, 3, 4, 5]


def test_a_show_whose_register_is_in_the_batch_refers_to_its_call_id_and_goes_after_it():
    result = pack([register(1, call=10), show(2, call=10, depends_on=1)])
    assert ids(result) == [1, 2]  # the register is pulled ahead of its card: a show needs it
    assert result.commands[1].params["CALL_ID"] == "$result[c1][CALL_ID]"
    assert result.commands[0].key == "c1"


def test_a_show_whose_register_is_done_gets_the_real_call_id():
    result = pack([show(2, call=10, depends_on=1)], {1: Dependency(packing.DONE, {"CALL_ID": "EXT.77"})})
    assert result.commands[0].params["CALL_ID"] == "EXT.77" and not result.batched


def test_a_show_whose_register_failed_is_blocked_and_the_rest_goes():
    result = pack([show(2, call=10, depends_on=1), finish(3, call=11)], {1: Dependency(packing.FAILED)})
    assert result.blocked == (2,) and ids(result) == [3]


def test_a_show_whose_register_is_not_due_waits_for_it():
    result = pack([show(2, call=10, depends_on=1), finish(3, call=11)],
                  {1: Dependency(packing.WAITING, due_at=100.0)})
    assert result.waiting == {2: 1} and ids(result) == [3]


def test_a_line_add_goes_in_the_same_batch_before_the_register_that_needs_it():
    line = Pending(1, 10, LINE, {"NUMBER": "+1"}, PRIORITY_REGISTER, order=5)
    result = pack([register(2, call=10, depends_on=1, order=0), line])
    assert ids(result) == [1, 2]
    assert result.commands[1].params == {"EXTERNAL_CALL_ID": "x10"}  # nothing to take from a line add


def test_round_robin_across_calls_no_call_gets_a_second_slot_before_every_other_got_its_first():
    # Call 1 wrote three finishes-priority commands first; calls 2 and 3 one each, later.
    pending = [finish(1, call=1, order=0), finish(2, call=1, order=1), finish(3, call=1, order=2),
               finish(4, call=2, order=3), finish(5, call=3, order=4)]
    assert ids(pack(pending)) == [1, 4, 5, 2, 3]
    assert ids(pack(pending, max_commands=3)) == [1, 4, 5]


def test_register_and_show_of_one_call_share_the_batch_with_other_calls_cards_first():
    pending = [register(1, call=1, order=0), show(2, call=1, depends_on=1, order=0),
               register(3, call=2, order=1), show(4, call=2, depends_on=3, order=1),
               finish(5, call=3, order=2)]
    assert ids(pack(pending)) == [1, 2, 3, 4, 5]
    assert ids(pack(pending, max_commands=3)) == [1, 2]  # call 2's pair does not fit: it waits whole


def test_attach_record_is_never_batched():
    attach = Pending(1, 1, "telephony.externalCall.attachRecord", {"CALL_ID": "B1"}, PRIORITY_FINISH, order=1)
    assert ids(pack([attach])) == [1]
    assert ids(pack([finish(2, call=2, order=0), attach])) == [2]  # it goes alone, next time
    assert ids(pack([attach, finish(2, call=2, order=2)])) == [1]
