"""The emulator's memory, one store per feature: access tokens, anchors and sent messages,
transcripts and the request log, quotas, media, streams. Each owns its data and the operations on
it; `SimState` (`state.py`) holds one of each, and the wires and rules above use them."""
