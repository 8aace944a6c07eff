"""Training rows from the contact history: each past campaign's customers with their features on
the campaign's date, the arm they got (or none: not targeted) and whether they churned within the
outcome window after it (the label of a snapshot built at that date).

Contacts that cannot be used are kept aside with the reason: made on another day than their
campaign's, for a customer not active on that date, or a second contact of one customer in one
campaign. A campaign without a control group, or whose outcome window has not passed, is left out
with a note; with no campaign left there is nothing to learn from, and that is an error.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from core import storage
from core.schema import CUSTOMER_ID, LABEL
from features.snapshot import Snapshot
from features.sources import ARMS, CONTROL, INTERVENTIONS

ARM = "_arm"
"""Arm code per row: ``NOT_TARGETED``, or the index into ``ARMS`` (0 = control)."""
CAMPAIGN = "_campaign"
NOT_TARGETED = -1
CONTROL_CODE = ARMS.index(CONTROL)


class HistoryError(ValueError):
    """The contact history cannot teach an uplift model; the message says why."""


@dataclass(frozen=True)
class Campaign:
    id: str
    date: dt.date
    arms: dict[str, int]
    """Contacts per arm."""


def read_contacts(snapshot: Snapshot) -> pd.DataFrame:
    """The valid retention contacts the snapshot knew (none for a snapshot of a flat table)."""
    if snapshot.contacts_uri is None:
        raise HistoryError(f"snapshot {snapshot.id} was built from a flat table: it holds no contact history")
    fs, path = storage.resolve(snapshot.contacts_uri)
    frame = pq.read_table(path, filesystem=fs).to_pandas()
    frame["contact_date"] = pd.to_datetime(frame["contact_date"]).dt.date
    return frame


def usable_campaigns(contacts: pd.DataFrame, last_day: dt.date, outcome_days: int) -> tuple[list[Campaign], list[str]]:
    """The campaigns an uplift model can learn from, oldest first, and a note for each left out."""
    campaigns, notes = [], []
    for campaign_id, group in contacts.groupby("campaign_id", sort=True):
        arms = {arm: int(n) for arm, n in group["arm"].value_counts().items()}
        day = min(group["contact_date"])
        if day + dt.timedelta(days=outcome_days) > last_day:
            notes.append(f"campaign {campaign_id} ({day}): its {outcome_days}-day outcome window ends after "
                         f"{last_day}, the last day of data; left out")
        elif not arms.get(CONTROL):
            notes.append(f"campaign {campaign_id} ({day}) has no control group, so its effect cannot be "
                         "measured; left out")
        elif not any(arms.get(name) for name in INTERVENTIONS):
            notes.append(f"campaign {campaign_id} ({day}) contacted nobody (control group only); left out")
        else:
            campaigns.append(Campaign(str(campaign_id), day, arms))
    if not campaigns:
        raise HistoryError("no past campaign with a control group and a complete outcome window"
                           + (": " + "; ".join(notes) if notes else " (the contact history is empty)"))
    return sorted(campaigns, key=lambda c: c.date), notes


def campaign_rows(snapshot: Snapshot, campaign: Campaign, contacts: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(every customer of ``snapshot``, taken on the campaign's date, with features, label, arm
    and campaign; the campaign's contacts set aside, with a ``reason``)."""
    if not snapshot.has_label or str(snapshot.manifest["as_of"]) != str(campaign.date):
        raise HistoryError(f"snapshot {snapshot.id} is not a labelled snapshot on {campaign.date}")
    features = snapshot.to_pandas()
    mine = contacts[contacts["campaign_id"] == campaign.id]
    reasons = pd.Series(pd.NA, index=mine.index, dtype="object")
    reasons[mine["contact_date"] != campaign.date] = "contact not on the campaign's date"
    reasons[reasons.isna() & ~mine[CUSTOMER_ID].isin(features[CUSTOMER_ID])] = \
        "customer not active on the campaign's date"
    reasons[reasons.isna() & mine.duplicated(CUSTOMER_ID)] = "customer contacted twice in the campaign"
    used = mine[reasons.isna()]
    code = pd.Series([ARMS.index(a) for a in used["arm"]], index=used[CUSTOMER_ID].to_numpy(), dtype=np.int8)
    features[ARM] = features[CUSTOMER_ID].map(code).fillna(NOT_TARGETED).astype(np.int8)
    features[CAMPAIGN] = campaign.id
    aside = mine[reasons.notna()].assign(reason=reasons[reasons.notna()])
    return features, aside


def history_rows(snapshots: list[Snapshot], campaigns: list[Campaign],
                 contacts: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``campaign_rows`` of every campaign (``snapshots[i]`` taken on ``campaigns[i]``'s date)."""
    parts = [campaign_rows(s, c, contacts) for s, c in zip(snapshots, campaigns, strict=True)]
    rows = pd.concat([p[0] for p in parts], ignore_index=True)
    aside = pd.concat([p[1] for p in parts], ignore_index=True)
    if LABEL not in rows:
        raise HistoryError("the campaign snapshots carry no label")
    return rows, aside
