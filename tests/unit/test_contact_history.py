"""The contact history an uplift model learns from, on small hand-made tables (no Spark, no Ray):
which campaigns are usable, and which contacts are set aside with which reason."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from features.sources import CONTROL
from ml.uplift.history import ARM, CONTROL_CODE, NOT_TARGETED, Campaign, HistoryError, campaign_rows, usable_campaigns

from support import synthetic_customers, write_snapshot

DAY = dt.date(2026, 6, 30)


def _contacts(*rows: tuple[str, str, dt.date, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["campaign_id", "customer_id", "contact_date", "arm"])


def test_a_campaign_with_a_control_group_and_a_complete_outcome_is_usable():
    contacts = _contacts(("RET000", "C1", DAY, CONTROL), ("RET000", "C2", DAY, "call"))
    campaigns, notes = usable_campaigns(contacts, DAY + dt.timedelta(days=40), 30)
    assert [(c.id, c.date, c.arms) for c in campaigns] == [("RET000", DAY, {CONTROL: 1, "call": 1})] and not notes


def test_a_campaign_whose_outcome_window_has_not_passed_is_left_out_with_a_note():
    contacts = _contacts(("RET000", "C1", DAY, CONTROL), ("RET000", "C2", DAY, "call"),
                         ("RET001", "C3", DAY + dt.timedelta(days=20), CONTROL),
                         ("RET001", "C4", DAY + dt.timedelta(days=20), "call"))
    campaigns, notes = usable_campaigns(contacts, DAY + dt.timedelta(days=40), 30)
    assert [c.id for c in campaigns] == ["RET000"]
    assert len(notes) == 1 and "RET001" in notes[0] and "outcome window" in notes[0]


def test_no_usable_campaign_is_an_error_that_says_why():
    contacts = _contacts(("RET000", "C2", DAY, "call"))
    with pytest.raises(HistoryError, match=r"RET000.*no control group"):
        usable_campaigns(contacts, DAY + dt.timedelta(days=40), 30)


def test_an_empty_history_is_an_error_that_says_so():
    with pytest.raises(HistoryError, match="the contact history is empty"):
        usable_campaigns(_contacts(), DAY, 30)


def test_unusable_contacts_are_set_aside_with_their_reason(settings):
    frame, features = synthetic_customers(20)
    snapshot = write_snapshot(settings, frame, features)
    ids = frame["customer_id"].tolist()
    contacts = _contacts(("RET000", ids[0], DAY, CONTROL), ("RET000", ids[1], DAY, "call"),
                         ("RET000", ids[1], DAY, "email"), ("RET000", "C999999", DAY, "call"),
                         ("RET000", ids[2], DAY - dt.timedelta(days=1), "call"))
    rows, aside = campaign_rows(snapshot, Campaign("RET000", DAY, {}), contacts)
    assert dict(zip(aside["customer_id"], aside["reason"], strict=True)) == {
        ids[1]: "customer contacted twice in the campaign", "C999999": "customer not active on the campaign's date",
        ids[2]: "contact not on the campaign's date"}
    arm = dict(zip(rows["customer_id"], rows[ARM], strict=True))
    assert arm[ids[0]] == CONTROL_CODE and arm[ids[1]] > CONTROL_CODE and arm[ids[3]] == NOT_TARGETED


def test_a_snapshot_of_another_date_is_refused(settings):
    frame, features = synthetic_customers(20)
    snapshot = write_snapshot(settings, frame, features)
    with pytest.raises(HistoryError, match="not a labelled snapshot on 2026-05-31"):
        campaign_rows(snapshot, Campaign("RET000", dt.date(2026, 5, 31), {}), _contacts())
