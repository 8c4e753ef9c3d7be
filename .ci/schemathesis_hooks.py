"""Schemathesis hooks for .ci/schemathesis.sh: real ids in the fuzzed paths, and a check that a
buyer never reads someone else's order or payment.

SCHEMATHESIS_SECKILL_ORDERS, SCHEMATHESIS_SECKILL_PAYMENTS, SCHEMATHESIS_SECKILL_CATALOG:
comma-separated ids of real objects (both buyers' orders and payments; the demo product and
activity). SCHEMATHESIS_SECKILL_ME: the id of the user whose token the run uses.
"""
import os
import random

import schemathesis

def _ids(name):
    return [i for i in os.environ.get(f"SCHEMATHESIS_SECKILL_{name}", "").split(",") if i]


ORDERS, PAYMENTS, CATALOG = _ids("ORDERS"), _ids("PAYMENTS"), _ids("CATALOG")
ME = os.environ.get("SCHEMATHESIS_SECKILL_ME", "")


@schemathesis.hook
def map_path_parameters(context, path_parameters):
    # Mostly aim at objects that exist, ours or the other buyer's.
    if not path_parameters or "id" not in path_parameters or random.random() < 0.2:
        return path_parameters
    path = context.operation.path if context.operation else ""
    pool = ORDERS if "/orders/" in path else PAYMENTS if "/payment/" in path else CATALOG
    if pool:
        path_parameters["id"] = random.choice(pool)
    return path_parameters


def _user_ids(value):
    if isinstance(value, dict):
        if "user_id" in value:
            yield value["user_id"]
        for v in value.values():
            yield from _user_ids(v)
    elif isinstance(value, list):
        for v in value:
            yield from _user_ids(v)


@schemathesis.check
def own_objects_only(ctx, response, case):
    """A buyer's successful answer carries only their own orders and payments."""
    if not ME or case.operation.path.startswith("/api/v1/admin") or response.status_code >= 300:
        return
    try:
        body = response.json()
    except Exception:
        return
    if not isinstance(body, dict):
        return
    others = [u for u in _user_ids(body.get("data")) if str(u) != ME]
    if others:
        raise AssertionError(
            f"{case.operation.label} answered another user's data (user_id {others[0]}) to user {ME}"
        )
