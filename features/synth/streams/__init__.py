"""Per-customer source builders: each yields its sources' clean rows for one shard, in turn,
so a shard holds one group of related sources at a time."""
from __future__ import annotations

from typing import Iterator

from features.synth.schema import Rows
from features.synth.streams.accounts import account_rows
from features.synth.streams.billing import billing_rows
from features.synth.streams.care import care_rows
from features.synth.streams.context import ShardContext
from features.synth.streams.marketing import marketing_rows
from features.synth.streams.usage import usage_rows

BUILDERS = (account_rows, usage_rows, billing_rows, care_rows, marketing_rows)


def customer_rows(ctx: ShardContext) -> Iterator[Rows]:
    for build in BUILDERS:
        yield from build(ctx)


__all__ = ["ShardContext", "customer_rows"]
