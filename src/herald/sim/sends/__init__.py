"""The OpenAPI endpoints that send, upload, recall or answer, one module per family: `v2` (C2C
and group messages, streams, files and chunked uploads), `guild` (channel and DM messages, DM
sessions, the audit hold), `recall`, `interactions`. `rest.py` routes to them."""
