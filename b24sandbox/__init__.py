"""A faithful local emulator of Bitrix24 for tests, the demo and PBX vendors. Never imported by production
settings: the product talks to it only over HTTP (in-process through ``responses``, or a real server)."""

from b24sandbox.clock import ManualClock, RealClock
from b24sandbox.install import InstallError, call_card_options
from b24sandbox.registry import CallContext, RestError, rest_method
from b24sandbox.sandbox import Sandbox
from b24sandbox.state import Portal, User

__all__ = [
    "CallContext",
    "InstallError",
    "ManualClock",
    "Portal",
    "RealClock",
    "RestError",
    "Sandbox",
    "User",
    "call_card_options",
    "rest_method",
]
