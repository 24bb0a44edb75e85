"""The cycle collector waits until a command is set up.

Start-up builds tens of thousands of objects that live as long as the process:
the openai SDK alone defines several hundred pydantic models. While they are
being made, the cycle collector keeps walking all of them again (about a
tenth of a short ``agentcli run``). So the entry point pauses it, and the
command resumes it once its set-up is done (the imports made, the agent
built): what exists then is frozen, never scanned again, and collection
works as usual on what the command makes from there on.
"""

import gc


def pause() -> None:
    """Stop automatic collection (the entry point, before any import)."""
    gc.disable()


def resume() -> None:
    """Freeze what set-up made and collect as usual again (idempotent)."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
