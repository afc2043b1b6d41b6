"""Diagnostic for bench/fanout.py --gc-probe: log every garbage-collector pause of a process.

Put on PYTHONPATH of the server under test (with FANOUT_GC_LOG=<file>); it changes nothing
in the server but adds a gc callback that appends "<pid> <generation> <ms> <collected>" for
each collection longer than 1 ms to the file.
"""

import gc
import os
import time

_path = os.environ.get("FANOUT_GC_LOG")
if _path:
    _t = [0.0]

    def _cb(phase: str, info: dict) -> None:
        if phase == "start":
            _t[0] = time.perf_counter()
            return
        ms = (time.perf_counter() - _t[0]) * 1000
        if ms >= 1.0:
            with open(_path, "a") as f:
                gen, collected = info.get("generation"), info.get("collected")
                f.write(f"{os.getpid()} {gen} {ms:.1f} {collected} {time.time():.3f}\n")

    gc.callbacks.append(_cb)
