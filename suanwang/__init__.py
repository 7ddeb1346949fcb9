"""Suanwang (算网): the command line, the only layer above everything else.

Task code may ``from suanwang import Permanent`` (cheap: it imports only ``fsm.errors``)
and raise it to fail a task at once, without retries.
"""
from fsm.errors import Permanent

__all__ = ["Permanent"]
