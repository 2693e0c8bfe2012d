"""The emulator's OneBot v11 side: an emulated implementation (the part NapCat or Lagrange play)
that owns one QQ account, connects out to the bot over a reverse WebSocket, pushes the events the
control API injects and answers the bot's actions. docs/sim.md ("OneBot v11") has the sources."""

from herald.sim.onebot.app import OneBotSimSettings, RunningOneBotSim, serve_onebot

__all__ = ["OneBotSimSettings", "RunningOneBotSim", "serve_onebot"]
