"""`herald sim`: an emulator of the QQ Open Platform.

This package is the other side of the wire. It imports nothing from Herald's client code
(`herald.core`, `herald.qq`, `herald.delivery`, ...), so a misreading of the platform cannot
hide on both sides at once. What it enforces, and the source of each rule, is in docs/sim.md;
comments cite the platform's facts as "§N" and "rule N" of docs/qq-platform.md.
"""
