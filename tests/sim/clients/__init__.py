"""Bots written for third-party QQ clients, each run unmodified against the emulator (test_clients.py)."""
