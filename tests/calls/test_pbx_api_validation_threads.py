"""Events are validated by serializer instances each thread reuses (calls.pbx_api.events): requests
validated at the same time in one process (gthread) keep their own connection's rules and their own errors."""

from __future__ import annotations

import threading

from calls.pbx_api.events import validate_events


def _recording(n: int, host: str) -> dict:
    return {"event_id": f"evt-{n}", "type": "call.recording_ready", "call_id": f"call-{n}",
            "occurred_at": "2025-03-01T12:00:00+03:00", "url": f"https://{host}/rec/{n}.wav", "filename": f"{n}.wav",
            "content_type": "audio/wav"}


def test_concurrent_validations_keep_their_own_context_and_errors():
    verdicts: dict[int, tuple] = {}
    start = threading.Barrier(8)

    def validate(n: int) -> None:
        own = f"pbx{n}.example"
        start.wait()
        for round_ in range(200):
            # Even threads send to their own host (allowed), odd ones to the next thread's (refused).
            host = own if n % 2 == 0 else f"pbx{n + 1}.example"
            payloads, fields, _ = validate_events([_recording(round_, host)], {"allowed_recording_hosts": {own}})
            verdict = (bool(payloads), sorted(fields))
            if verdicts.setdefault(n, verdict) != verdict:
                verdicts[n] = ("changed", round_, verdict)
                return

    threads = [threading.Thread(target=validate, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert verdicts == {n: ((True, []) if n % 2 == 0 else (False, ["0.url"])) for n in range(8)}
