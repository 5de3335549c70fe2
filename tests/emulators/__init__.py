"""Local emulators of the cloud services Kite talks to: real HTTP servers on 127.0.0.1 for the tests.

Each is also runnable by hand (``python -m tests.emulators.<name>``) and prints the environment
variables that point the app at it.
"""
