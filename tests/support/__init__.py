"""Test support (no tests here): real servers on loopback ports, LoRA adapters, seeded data, drill rigs.

Imported by the tests and by ``bench/``; never shipped (the image copies only ``shared/`` and ``services/``).
"""
