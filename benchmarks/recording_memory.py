"""Move one big recording through the real pipeline and report memory and throughput.

    .venv/bin/python benchmarks/recording_memory.py [--mb 200] [--tracemalloc]

A generated WAV (pbxsim's recording server, Basic auth) is downloaded by the SSRF-safe streaming
downloader into RECORDINGS_DIR-like temp space, then uploaded to the Bitrix24 sandbox in server
mode with attachRecord's two-step uploadUrl (streamed multipart). Both servers run in child
processes, so this process's peak RSS is the pipeline's own. The sandbox reports the sha256 of
what it stored, which must equal the source.

Target: peak RSS growth stays a few MB whatever the file size (streaming end to end).
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MB = 1024 * 1024
USER, PASSWORD = "bench", "bench-secret"


def rss_now() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakSampler(threading.Thread):
    """VmRSS every 20 ms: ru_maxrss is a lifetime peak and cannot be reset between phases."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = rss_now()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.02):
            self.peak = max(self.peak, rss_now())


# --- child processes ------------------------------------------------------------------------------

def pbx_process(conn) -> None:
    from pbxsim.server import RecordingPolicy, SimServer

    server = SimServer("127.0.0.1").start()
    server.state.recordings = RecordingPolicy(auth=("basic", USER, PASSWORD))
    conn.send(server.base_url)
    conn.recv()  # wait for "stop"
    server.stop()


def sandbox_process(conn) -> None:
    from b24sandbox.pytest_plugin import make_sandbox

    sb, _inbox = make_sandbox(allow_http=True, limits=False)
    server = sb.serve(host="127.0.0.1", port=0)
    portal = sb.create_portal("bench.bitrix24.test")
    sb.install(portal)
    token = sb.issue_token(portal)
    conn.send(token)
    while True:
        msg = conn.recv()
        if msg == "stop":
            break
        call_id = msg
        rec = portal.telephony.recordings.get(call_id)
        conn.send(None if rec is None else (rec.filename, rec.size, hashlib.sha256(rec.content).hexdigest()))
    server.stop()


# --- the measured pipeline ----------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=200.0, help="recording size in MiB (default 200)")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also trace Python allocations (slower; throughput then understates)")
    args = parser.parse_args()

    from b24client import Bitrix24Client, Credentials
    from b24client.memory_store import MemoryTokenStore
    from calls.recordings.conf import RecordingSettings
    from calls.recordings.download import FetchPolicy, download_recording
    from calls.recordings.formats import prepare_for_bitrix24
    from calls.recordings.transfer import fetch_limits
    from calls.recordings.upload import upload_recording
    from pbxsim.wav import SAMPLE_RATE, SAMPLE_WIDTH, wav_size

    seconds = int(args.mb * MB / (SAMPLE_RATE * SAMPLE_WIDTH))
    size = wav_size(seconds)
    ctx = mp.get_context("spawn")
    pbx_end, pbx_child = ctx.Pipe()
    sb_end, sb_child = ctx.Pipe()
    procs = [ctx.Process(target=pbx_process, args=(pbx_child,)), ctx.Process(target=sandbox_process, args=(sb_child,))]
    for p in procs:
        p.start()
    try:
        pbx_url = pbx_end.recv()
        token = sb_end.recv()
        creds = Credentials(
            access_token=token["access_token"], refresh_token=token["refresh_token"],
            expires_at=float(token["expires"]), client_endpoint=token["client_endpoint"],
            server_endpoint=token["server_endpoint"], member_id=token["member_id"], user_id=token["user_id"],
        )
        client = Bitrix24Client(MemoryTokenStore(creds), allow_http=True, timeout=(10, 600))
        call_id = client.call("telephony.externalcall.register", {
            "USER_ID": token["user_id"], "PHONE_NUMBER": "+74951234567", "TYPE": 2, "SHOW": 0, "CRM_CREATE": 0,
            "CALL_START_DATE": "2025-03-01T09:00:00+00:00",
        }).result["CALL_ID"]
        client.call("telephony.externalcall.finish", {
            "CALL_ID": call_id, "USER_ID": token["user_id"], "DURATION": seconds, "STATUS_CODE": "200",
            "ADD_TO_CHAT": 0,
        })

        with tempfile.TemporaryDirectory(prefix="recbench-") as work:
            conf = RecordingSettings(
                work_dir=Path(work), max_bytes=size + MB, allow_private_hosts=True, allow_http=True,
                private_networks=(), ffmpeg="ffmpeg", connect_timeout=10, read_timeout=60,
                download_deadline=3600, max_redirects=3, convert_timeout=600, upload_timeout=1800,
            )
            policy = FetchPolicy(allowed_hosts=("127.0.0.1",),
                                 auth_headers={"Authorization": _basic(USER, PASSWORD)})
            # The expected digest, computed from the generator without holding the file.
            expected = _wav_sha256(seconds)

            base_rss = rss_now()
            sampler = PeakSampler()
            sampler.start()
            if args.tracemalloc:
                tracemalloc.start()

            t0 = time.perf_counter()
            got = download_recording(f"{pbx_url}/recordings/bench.wav?seconds={seconds}", policy=policy,
                                     limits=fetch_limits(conf), dest_dir=Path(work) / "tmp",
                                     expected_sha256=expected)
            t1 = time.perf_counter()
            audio = prepare_for_bitrix24(got.path, content_type="audio/wav", filename="bench.wav",
                                         ffmpeg_setting=conf.ffmpeg, work_dir=Path(work) / "tmp", timeout=600)
            uploaded = upload_recording(client, b24_call_id=call_id, path=audio.path,
                                        filename=f"bench_{int(time.time())}.wav", mime="audio/wav",
                                        session=client.session, timeout=(10, 1800))
            t2 = time.perf_counter()

            traced_peak = tracemalloc.get_traced_memory()[1] if args.tracemalloc else None
            if args.tracemalloc:
                tracemalloc.stop()
            sampler.stop.set()
            sampler.join()
            got.path.unlink()

        sb_end.send(call_id)
        stored = sb_end.recv()
    finally:
        for end in (pbx_end, sb_end):
            try:
                end.send("stop")
            except (BrokenPipeError, OSError):
                pass
        for p in procs:
            p.join(timeout=30)

    ok = stored is not None and stored[1] == size and stored[2] == expected
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"recording          {size / MB:.1f} MiB WAV ({seconds} s at 8 kHz/16-bit)")
    print(f"download           {size / MB / (t1 - t0):8.1f} MiB/s  ({t1 - t0:.2f} s, sha256 checked while streaming)")
    print(f"upload (2-step)    {size / MB / (t2 - t1):8.1f} MiB/s  ({t2 - t1:.2f} s, multipart streamed)")
    print(f"end to end         {size / MB / (t2 - t0):8.1f} MiB/s  ({t2 - t0:.2f} s)")
    print(f"RSS before         {base_rss / MB:8.1f} MiB")
    print(f"RSS peak (sampled) {sampler.peak / MB:8.1f} MiB  (+{(sampler.peak - base_rss) / MB:.1f} MiB during the move)")
    print(f"ru_maxrss          {maxrss / MB:8.1f} MiB  (lifetime peak of this process)")
    if traced_peak is not None:
        print(f"tracemalloc peak   {traced_peak / MB:8.2f} MiB  (Python allocations during the move)")
    print(f"stored at sandbox  {stored[0] if stored else None}: "
          f"{'bytes identical to the source' if ok else 'MISMATCH'} ({uploaded.size} bytes sent)")
    return 0 if ok else 1


def _basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _wav_sha256(seconds: int) -> str:
    from pbxsim.wav import iter_wav

    digest = hashlib.sha256()
    for chunk in iter_wav(seconds):
        digest.update(chunk)
    return digest.hexdigest()


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "telephony_app.settings")
    raise SystemExit(main())
