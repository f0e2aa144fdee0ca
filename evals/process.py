"""Child processes that do not outlive us (shared by the pipeline's steps and the launched vLLM server)."""
from __future__ import annotations

import signal
import sys
from typing import Callable


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A Popen `preexec_fn` asking Linux to send `sig` to the child when the thread that forked it ends
    (PR_SET_PDEATHSIG), e.g. when its parent is killed with SIGKILL. Resolved before the fork (the child may
    not import anything); None elsewhere than Linux or without libc's prctl."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, sig)   # 1 = PR_SET_PDEATHSIG
