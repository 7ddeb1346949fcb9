"""Suanwang (算网): the command line, the only layer above everything else."""
