"""A PBX simulator speaking docs/pbx-api.md (framework-free: requests + stdlib).

    from pbxsim import PbxSimulator, SimServer, build, play
    sim = PbxSimulator("http://127.0.0.1:8000", connection_id, "whsec_…")
    play(sim, build("ring_group_second_answers", seed=1), speed=10)

CLI: ``python -m pbxsim --help``.
"""

from .client import PbxSimulator, RequestsTransport, SentRequest, SimResponse
from .load import LoadReport, run_load
from .scenarios import SCENARIOS, Delivery, DeliveryOptions, Scenario, ScenarioParams, build, play
from .server import SimServer
from .wav import iter_wav, wav_bytes, wav_size

__all__ = [
    "SCENARIOS",
    "Delivery",
    "DeliveryOptions",
    "LoadReport",
    "PbxSimulator",
    "RequestsTransport",
    "Scenario",
    "ScenarioParams",
    "SentRequest",
    "SimResponse",
    "SimServer",
    "build",
    "iter_wav",
    "play",
    "run_load",
    "wav_bytes",
    "wav_size",
]
