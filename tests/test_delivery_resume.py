"""A delivery that stopped after acting is finished as planned, whichever version saved the plan.

The real app on a virtual clock against the simulated shop and Cryptum API
(`payment_world`); the crash is the app cancelled mid-delivery and started
again on the same database.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from payment_world import World

TX = "0x5e5e"


def deliveries(world: World) -> list[dict[str, Any]]:
    return world.rows("SELECT * FROM deliveries")


async def test_a_plan_saved_without_its_payment_status_applies_the_events_status(
    world: World,
) -> None:
    cryptum_id = world.checkout(11)
    world.cryptum.set_status(cryptum_id, "confirmed", transactions=[("POLYGON", TX)])
    assert await world.post(world.callback(cryptum_id, "confirmed", tx=TX)) == 200
    await world.crash_during_deliveries(after_requests=2)  # the GET and the PUT
    (delivery,) = deliveries(world)
    assert delivery["progress"] == "acting"
    # Plans saved before they recorded the payment status carry none.
    plan = json.loads(delivery["decision"])
    del plan["payment_status"]
    with sqlite3.connect(world.directory / "bridge.sqlite3") as connection:
        connection.execute("UPDATE deliveries SET decision = ?", (json.dumps(plan),))

    await world.worker.run_due()
    (delivery,) = deliveries(world)
    assert (delivery["state"], delivery["applied_status"]) == ("done", "confirmed")
    assert world.shop.orders[11].status == "processing"
    assert len(world.bridge_notes(11)) == 1
