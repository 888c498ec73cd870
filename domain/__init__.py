"""The pure domain of tradecore: aggregates, their events, value objects and rules.

Nothing here performs I/O or reads a clock: time arrives as the ``timestamp`` argument of
every command, and becomes the recorded event's timestamp.
"""
