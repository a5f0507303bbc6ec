"""The local runner: the engine driven by asyncio, each step a process on this machine."""
