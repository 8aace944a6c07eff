"""Per-customer source builders: each yields its sources' clean rows for one shard, in turn,
so a shard holds one group of related sources at a time."""
from __future__ import annotations

from collections.abc import Iterator

from simulator.schema import Rows
from simulator.streams.accounts import account_rows
from simulator.streams.billing import billing_rows
from simulator.streams.care import care_rows
from simulator.streams.context import ShardContext
from simulator.streams.marketing import marketing_rows
from simulator.streams.usage import usage_rows

BUILDERS = (account_rows, usage_rows, billing_rows, care_rows, marketing_rows)


def customer_rows(ctx: ShardContext) -> Iterator[Rows]:
    for build in BUILDERS:
        yield from build(ctx)


__all__ = ["ShardContext", "customer_rows"]
