"""``suite bench``: how fast each backend trains networks of several sizes.

:mod:`sizes` (the grid and the sized specs), :mod:`memory` (refusing a grid too large),
:mod:`peak` (the machine's float32 matmul peak), :mod:`worker` (one backend's sweep in
its own process), :mod:`runner` (the harness: one backend at a time, per-size time
limits), :mod:`standalone` (the hand-written scripts the figures are checked against),
:mod:`report` and :mod:`plots` (report.md, report.html).
"""
