"""A Herald delivery process for the crash test: Database + QQPlatform + Outbox on the real clock.

Run as `python crash_worker.py DB_URL API_BASE TOKEN_URL APP_ID SECRET [QPS]`; it delivers until no item is
pending and exits 0. The test SIGKILLs it at random moments and starts it again.
"""

from __future__ import annotations

import asyncio
import sys

from pydantic import SecretStr
from sqlalchemy import func, select

from herald.config import DeliveryConfig, QQConfig, QQDeliveryConfig
from herald.core.clock import SystemClock
from herald.delivery.outbox import Outbox
from herald.qq.adapter import QQPlatform
from herald.store.db import Database
from herald.store.tables.outbox import OutboxItem


async def main(
    db_url: str, api_base: str, token_url: str, app_id: str, secret: str, qps: str = "100"
) -> None:
    db = Database(db_url)
    clock = SystemClock()
    config = DeliveryConfig(instance="crash-worker")
    rules = QQDeliveryConfig(message_qps=float(qps))
    platform = QQPlatform(
        QQConfig(
            app_id=app_id, secret=SecretStr(secret), api_base=api_base, token_url=token_url, delivery=rules
        ),
        db,
        clock,
    )
    await platform.connect()
    outbox = Outbox(db, platform, clock, config=config)
    await outbox.start()
    try:
        while True:
            async with db.session() as session:
                pending = await session.scalar(
                    select(func.count()).select_from(OutboxItem).where(OutboxItem.state == "pending")
                )
            if not pending:
                return
            await asyncio.sleep(0.05)
    finally:
        await outbox.stop()
        await platform.stop()
        await db.dispose()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:7]))
