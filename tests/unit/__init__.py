"""Non-GUI tests: core, storage and the ``kite`` command. Nothing here imports Qt."""
