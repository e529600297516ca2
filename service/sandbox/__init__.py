"""code_interpreter's sandbox: the port (base.py), the bubblewrap backend, and the sessions."""

from service.sandbox.base import Box, Execution, Limits, Sandbox
from service.sandbox.bubblewrap import BubblewrapSandbox
from service.sandbox.sessions import Sessions

__all__ = ["Box", "BubblewrapSandbox", "Execution", "Limits", "Sandbox", "Sessions"]
