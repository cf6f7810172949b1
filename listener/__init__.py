"""listener: a social-listening daemon for webcare teams.

The data flow, one stage per module: sources → post → match → locate (geo) → score → route →
outbox (store) → notify. `listener.daemon` wires the stages; `listener.cli` is the command line.
"""

__version__ = "0.1.0"
