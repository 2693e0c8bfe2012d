"""Herald's side of the QQ Official Bot wire: token, REST API, gateway, webhook, inbound events.

Composition (the adapter in `herald.qq.adapter` wires these):

    tokens   = TokenManager(session, app_id, secret, token_url, clock)
    api      = QQApi(session, tokens, api_base)
    pipeline = InboundPipeline(api, on_event, clock)
    gateway  = GatewayClient(api, tokens, intents, shard, pipeline.handle_dispatch, clock)
    receiver = WebhookReceiver(app_id, secret, pipeline.handle_dispatch, clock=clock)

Nothing above this package sees QQ payloads: it hands out `herald.core` events and raises
`QQApiError` (convertible with `.to_delivery_error()`).

Comments here cite the platform's facts as "§N" and "rule N" of docs/qq-platform.md.
"""
