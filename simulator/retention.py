"""Earlier retention campaigns in the generated window: the business's test-and-learn programme.

Each campaign contacts a random share of the customers active on its day and assigns each, at
random, to the control group or to one intervention they are eligible for (e-mail needs consent).
What a contact does is the generator's own response model (``truth.responses``): a contacted
customer whose churn date falls within the outcome window stays when that model says the
intervention keeps them, and then does not leave within the horizon. The control group and the
untargeted are left as they were, so the history holds the randomised contrasts an uplift model
learns from. Campaigns end early enough that their outcomes are complete before the default
training as-of date (the last ``OUTCOME_DAYS`` of the window), so they never overlap the window in
which a new campaign is judged.

A campaign planned by the platform can be run in the same world (``AppliedCampaign``: its target
list, control group included, on its as-of day): the same response model decides who it keeps, and
the contacts are recorded like any other campaign's, so the next period shows what it did.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.sources import ARMS, CONTROL, INTERVENTIONS
from simulator.behaviour import Behaviour
from simulator.population import NEVER, Population
from simulator.schema import Rows, ids, labels
from simulator.window import Window

FIRST_DAY = 29
EVERY_DAYS = 30
OUTCOME_DAYS = 30
"""A contact keeps a would-be churner whose churn date falls within this many days after it."""
TARGET_SHARE = 0.3
"""Share of the active customers each campaign contacts."""
CONTROL_SHARE = 0.2
"""Share of each campaign's targets kept aside as its control group."""
RECOVERY_DAYS = 14
"""A kept customer's distress fades to nothing over this many days after the contact."""
NEEDS_CONSENT = ("email",)


@dataclass(frozen=True)
class PastCampaigns:
    """One entry per contact (control-group members included), in campaign order."""

    customer: np.ndarray
    """Index of the contacted customer in the shard."""
    campaign: np.ndarray
    """Campaign number (0 = the first in the window)."""
    day: np.ndarray
    arm: np.ndarray
    """Index into ``ARMS``."""
    kept: np.ndarray
    """bool: the contact kept a customer who would have churned in its outcome window."""
    names: tuple[str, ...]
    """Campaign id per campaign number."""


@dataclass(frozen=True)
class AppliedCampaign:
    """A target list planned outside the generator, contacted on ``day`` of the window."""

    name: str
    day: int
    customer_id: pa.Array
    arm: np.ndarray
    """Index into ``ARMS`` per listed customer (control-group members included)."""


def campaign_days(window: Window) -> list[int]:
    """Days of the campaigns whose outcome windows end before the window's last ``OUTCOME_DAYS``."""
    last = window.days - 1 - 2 * OUTCOME_DAYS
    return list(range(FIRST_DAY, last + 1, EVERY_DAYS))


def run_campaigns(people: Population, window: Window, keeps: dict[str, np.ndarray], gen: np.random.Generator,
                  applied: AppliedCampaign | None = None) -> tuple[PastCampaigns, np.ndarray]:
    """Run every campaign of the window in turn, then the applied one if any; returns the contacts
    and the churn days after them."""
    churn = people.churn_day.copy()
    kept_matrix = np.column_stack([keeps[k] for k in INTERVENTIONS])
    days = campaign_days(window)
    parts = []
    for index, on in enumerate(days):
        active = (people.signup_day < on) & (churn > on)
        targeted = np.flatnonzero(active & (gen.random(people.n) < TARGET_SHARE))
        parts.append(_contact(targeted, _assign_arms(targeted, people, gen), index, on, churn, kept_matrix))
    names = tuple(f"RET{number:03d}" for number in range(len(days)))
    if applied is not None:
        targeted, arm = _listed(people, applied)
        active = (people.signup_day[targeted] < applied.day) & (churn[targeted] > applied.day)
        parts.append(_contact(targeted[active], arm[active], len(days), applied.day, churn, kept_matrix))
        names += (applied.name,)
    empty = (np.array([], dtype=np.int64),) * 4 + (np.array([], dtype=bool),)
    customer, number, day, arm, kept = [np.concatenate(column) for column in zip(*parts)] if parts else empty
    return PastCampaigns(customer, number, day, arm, kept, names), churn


def _contact(targeted: np.ndarray, arm: np.ndarray, number: int, day: int, churn: np.ndarray,
             kept_matrix: np.ndarray) -> tuple[np.ndarray, ...]:
    """One campaign's contacts; ``churn`` loses the churn days of the would-be churners it keeps."""
    treated = arm != ARMS.index(CONTROL)
    would_churn = churn[targeted] <= day + OUTCOME_DAYS
    kept = treated & would_churn & kept_matrix[targeted, np.maximum(arm - 1, 0)]
    churn[targeted[kept]] = NEVER
    return targeted, np.full(targeted.size, number), np.full(targeted.size, day), arm, kept


def _listed(people: Population, applied: AppliedCampaign) -> tuple[np.ndarray, np.ndarray]:
    """The shard's customers on the applied campaign's list (shard index, arm)."""
    position = pc.index_in(people.customer_id, value_set=applied.customer_id)
    here = np.flatnonzero(pc.is_valid(position).to_numpy(zero_copy_only=False))
    rows = pc.take(position, pa.array(here, pa.int64())).to_numpy(zero_copy_only=False).astype(np.int64)
    return here, applied.arm[rows]


def _assign_arms(targeted: np.ndarray, people: Population, gen: np.random.Generator) -> np.ndarray:
    """Control with ``CONTROL_SHARE``, else one of the customer's eligible interventions, uniformly."""
    eligible = np.ones((targeted.size, len(INTERVENTIONS)), dtype=bool)
    for name in NEEDS_CONSENT:
        eligible[:, INTERVENTIONS.index(name)] = people.email_opt_in[targeted]
    pick = (gen.random(targeted.size) * eligible.sum(axis=1)).astype(np.int64)
    intervention = np.argmax(np.cumsum(eligible, axis=1) > pick[:, None], axis=1)
    control = gen.random(targeted.size) < CONTROL_SHARE
    return np.where(control, ARMS.index(CONTROL), 1 + intervention)


def apply_to(people: Population, behaviour: Behaviour, campaigns: PastCampaigns,
             churn_day: np.ndarray) -> tuple[Population, Behaviour]:
    """The customers and their behaviour after the campaigns: a kept customer stays active, and
    their pre-churn distress fades after the contact (before it, nothing changes: features at
    contact time must not know the outcome)."""
    who, day = campaigns.customer[campaigns.kept], campaigns.day[campaigns.kept]
    active, distress = behaviour.active.copy(), behaviour.distress.copy()
    days = np.arange(active.shape[1])[None, :]
    after = days > day[:, None]
    active[who] |= after
    fade = np.clip(1.0 - (days - day[:, None]) / RECOVERY_DAYS, 0.0, 1.0)
    distress[who] = np.where(after, distress[who, day][:, None] * fade, distress[who]).astype(np.float32)
    return replace(people, churn_day=churn_day), replace(behaviour, active=active, distress=distress)


def contact_rows(people: Population, window: Window, campaigns: PastCampaigns, shard: int) -> Rows:
    """The campaign management system's record: one row per targeted customer, control included."""
    return Rows("retention_contacts", {
        "contact_id": ids(f"RC{shard:05d}-", np.arange(campaigns.customer.size), 8),
        "campaign_id": pa.array(np.array(campaigns.names, dtype=object)[campaigns.campaign], pa.string()),
        "customer_id": people.customer_id.take(pa.array(campaigns.customer, pa.int64())),
        "contact_date": window.dates(campaigns.day),
        "arm": labels(ARMS, campaigns.arm),
    })
