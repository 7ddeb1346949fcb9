"""Workflow examples: task functions (imported by workers as ``examples.workflows.<module>``) and drivers."""
