"""An in-process emulator of the FlexNet Embedded License Server REST API."""

from vlm.flexnet.emulator.app import create_app
from vlm.flexnet.emulator.server import RunningEmulator, serve, start_emulator
from vlm.flexnet.emulator.state import EmulatorError, EmulatorState, read_fixture

__all__ = [
    "EmulatorError",
    "EmulatorState",
    "RunningEmulator",
    "create_app",
    "read_fixture",
    "serve",
    "start_emulator",
]
