"""The bottom layer: task states, the transition table, errors, and the store over MongoDB."""
