"""The contact history and the features on each past campaign's date, built from raw sources by
the Spark ETL: what an uplift run learns from."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
from pyspark.sql import SparkSession

from core.settings import Settings
from features import raw_etl
from features.snapshot import Snapshot
from ml.uplift.history import Campaign, read_contacts, usable_campaigns


@dataclass(frozen=True)
class History:
    snapshots: list[Snapshot]
    """One labelled snapshot per usable campaign, on its date."""
    campaigns: list[Campaign]
    contacts: pd.DataFrame
    notes: list[str]
    """Campaigns left out, and why."""


def build_history(spark: SparkSession, settings: Settings, raw_uri: str) -> History:
    """The contacts known at the last complete outcome window, and a snapshot on each usable
    campaign's date (none of them moves the LATEST snapshot)."""
    days = settings.interventions.outcome_days
    last = raw_etl.data_window(raw_uri)[1]
    reference = raw_etl.run_many(spark, settings, raw_uri, [last - dt.timedelta(days=days)], days, latest=False)[0]
    contacts = read_contacts(reference.snapshot)
    campaigns, notes = usable_campaigns(contacts, last, days)
    results = raw_etl.run_many(spark, settings, raw_uri, [c.date for c in campaigns], days, latest=False)
    return History([r.snapshot for r in results], campaigns, contacts, notes)
