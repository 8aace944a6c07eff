"""The raw sources of the business: where each comes from, its format and its contract.

This catalogue is the single statement of every raw source's schema. The generator writes
these columns, the ETL's validation enforces these contracts (types, ranges, allowed
categories, uniqueness), and the README's sources table is rendered from it.

Event streams are partitioned by arrival date (``date=YYYY-MM-DD``); their ``event_time``
column says when the event happened, which can be earlier (late-arriving records).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

REGIONS = ("north", "south", "east", "west", "central")
PLAN_TIERS = ("basic", "standard", "premium", "unlimited")
CONTRACT_TYPES = ("month_to_month", "one_year", "two_year")
PAYMENT_METHODS = ("card", "bank_transfer", "electronic_check", "mailed_check")
INTERVENTIONS = ("email", "call", "discount", "account_manager")
CONTROL = "control"
ARMS = (CONTROL, *INTERVENTIONS)
"""What a retention campaign gives a targeted customer: an intervention, or nothing (its control group)."""

Dtype = Literal["string", "int64", "float64", "bool", "date", "timestamp"]
Format = Literal["parquet", "csv", "jsonl"]


@dataclass(frozen=True)
class Column:
    name: str
    dtype: Dtype
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None

    @property
    def numeric(self) -> bool:
        return self.dtype in ("int64", "float64")


@dataclass(frozen=True)
class Source:
    name: str
    description: str
    system: str
    format: Format
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    event_time: str | None = None
    max_defect_rate: float = 0.05
    may_be_empty: bool = False
    """A history that can legitimately have no rows yet (no campaign run so far)."""

    @property
    def is_event_stream(self) -> bool:
        return self.event_time is not None

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def _c(name: str, dtype: Dtype, **kw) -> Column:
    return Column(name, dtype, **kw)


CID = _c("customer_id", "string")

SOURCES: tuple[Source, ...] = (
    Source("crm_customers", "Customer master record", "CRM", "csv",
           (CID, _c("signup_date", "date"), _c("region", "string", allowed=REGIONS),
            _c("segment", "string", allowed=("consumer", "small_business")),
            _c("acquisition_channel", "string", allowed=("store", "web", "partner", "referral")),
            _c("email_opt_in", "bool")),
           key=("customer_id",)),
    Source("demographics", "Age, household and income band", "Data vendor", "parquet",
           (CID, _c("age", "int64", min=18, max=100), _c("gender", "string", allowed=("F", "M", "X")),
            _c("household_size", "int64", min=1, max=12),
            _c("income_band", "string", allowed=("low", "middle", "high")),
            _c("has_dependents", "bool")),
           key=("customer_id",)),
    Source("plans_catalogue", "Tariff plans on sale", "Product catalogue", "csv",
           (_c("plan_id", "string"), _c("tier", "string", allowed=PLAN_TIERS),
            _c("monthly_price", "float64", min=1, max=500), _c("data_gb", "float64", min=0, max=10_000),
            _c("includes_streaming", "bool")),
           key=("plan_id",)),
    Source("subscriptions", "Contracts: plan at signing (changes are in plan_changes), contract type, start, end",
           "Billing system", "parquet",
           (_c("subscription_id", "string"), CID, _c("plan_id", "string"),
            _c("contract_type", "string", allowed=CONTRACT_TYPES),
            _c("payment_method", "string", allowed=PAYMENT_METHODS), _c("paperless_billing", "bool"),
            _c("start_date", "date"), _c("end_date", "date", nullable=True)),
           key=("subscription_id",)),
    Source("plan_changes", "Upgrades and downgrades", "Billing system", "jsonl",
           (_c("change_id", "string"), CID, _c("event_time", "timestamp"), _c("from_plan", "string"),
            _c("to_plan", "string"), _c("direction", "string", allowed=("upgrade", "downgrade"))),
           key=("change_id",), event_time="event_time"),
    Source("billing_invoices", "Monthly invoices", "Billing system", "parquet",
           (_c("invoice_id", "string"), CID, _c("event_time", "timestamp"),
            _c("amount", "float64", min=0, max=5_000), _c("due_days", "int64", min=0, max=60)),
           key=("invoice_id",), event_time="event_time"),
    Source("payments", "Payments received", "Payment gateway", "parquet",
           (_c("payment_id", "string"), CID, _c("invoice_id", "string"), _c("event_time", "timestamp"),
            _c("amount", "float64", min=0, max=5_000),
            _c("method", "string", allowed=PAYMENT_METHODS)),
           key=("payment_id",), event_time="event_time"),
    Source("late_payments", "Invoices paid after their due date", "Collections", "csv",
           (_c("late_id", "string"), CID, _c("invoice_id", "string"), _c("event_time", "timestamp"),
            _c("days_late", "int64", min=1, max=180), _c("fee", "float64", min=0, max=100)),
           key=("late_id",), event_time="event_time"),
    Source("usage_daily", "Daily data, voice and SMS usage", "Network mediation", "parquet",
           (CID, _c("event_time", "timestamp"), _c("data_mb", "float64", min=0, max=200_000),
            _c("voice_minutes", "float64", min=0, max=1_440), _c("sms_count", "int64", min=0, max=5_000),
            _c("dropped_calls", "int64", min=0, max=500)),
           key=("customer_id", "event_time"), event_time="event_time"),
    Source("app_sessions", "Mobile app sessions", "App analytics", "jsonl",
           (_c("session_id", "string"), CID, _c("event_time", "timestamp"),
            _c("duration_s", "float64", min=0, max=86_400), _c("screens", "int64", min=1, max=500),
            _c("crashed", "bool")),
           key=("session_id",), event_time="event_time"),
    Source("web_visits", "Website page visits", "Web analytics", "csv",
           (_c("visit_id", "string"), CID, _c("event_time", "timestamp"),
            _c("page", "string", allowed=("home", "billing", "plans", "support", "cancel")),
            _c("duration_s", "float64", min=0, max=86_400)),
           key=("visit_id",), event_time="event_time"),
    Source("support_tickets", "Support tickets opened", "Helpdesk", "jsonl",
           (_c("ticket_id", "string"), CID, _c("event_time", "timestamp"),
            _c("category", "string", allowed=("billing", "network", "device", "account", "other")),
            _c("priority", "string", allowed=("low", "medium", "high"))),
           key=("ticket_id",), event_time="event_time"),
    Source("ticket_resolutions", "How and when tickets were closed", "Helpdesk", "csv",
           (_c("ticket_id", "string"), CID, _c("event_time", "timestamp"),
            _c("resolution", "string", allowed=("resolved", "escalated", "unresolved")),
            _c("satisfaction", "int64", min=1, max=5)),
           key=("ticket_id",), event_time="event_time"),
    Source("complaints", "Formal complaints", "Customer relations", "jsonl",
           (_c("complaint_id", "string"), CID, _c("event_time", "timestamp"),
            _c("severity", "int64", min=1, max=5),
            _c("topic", "string", allowed=("price", "coverage", "service", "billing_error"))),
           key=("complaint_id",), event_time="event_time"),
    Source("nps_surveys", "Net-promoter survey answers", "Survey platform", "csv",
           (_c("response_id", "string"), CID, _c("event_time", "timestamp"), _c("score", "int64", min=0, max=10)),
           key=("response_id",), event_time="event_time"),
    Source("network_quality", "Daily network quality per region", "Network operations", "parquet",
           (_c("region", "string", allowed=REGIONS), _c("event_time", "timestamp"),
            _c("latency_ms", "float64", min=1, max=2_000), _c("outage_minutes", "float64", min=0, max=1_440)),
           key=("region", "event_time"), event_time="event_time"),
    Source("device_inventory", "Devices registered per customer", "Device management", "parquet",
           (_c("device_id", "string"), CID, _c("os", "string", allowed=("android", "ios", "other")),
            _c("device_age_months", "int64", min=0, max=240), _c("financed", "bool")),
           key=("device_id",)),
    Source("marketing_touches", "Marketing contacts sent", "Marketing automation", "jsonl",
           (_c("touch_id", "string"), CID, _c("event_time", "timestamp"),
            _c("channel", "string", allowed=("email", "sms", "push", "call"))),
           key=("touch_id",), event_time="event_time"),
    Source("campaign_responses", "Responses to marketing contacts", "Marketing automation", "csv",
           (_c("touch_id", "string"), CID, _c("event_time", "timestamp"),
            _c("response", "string", allowed=("opened", "clicked", "converted"))),
           key=("touch_id",), event_time="event_time"),
    Source("referrals", "Friends referred by a customer", "Referral programme", "csv",
           (_c("referral_id", "string"), CID, _c("event_time", "timestamp"), _c("rewarded", "bool")),
           key=("referral_id",), event_time="event_time"),
    Source("refunds", "Refunds and credits issued", "Billing system", "parquet",
           (_c("refund_id", "string"), CID, _c("event_time", "timestamp"),
            _c("amount", "float64", min=0, max=2_000),
            _c("reason", "string", allowed=("outage", "billing_error", "goodwill"))),
           key=("refund_id",), event_time="event_time"),
    Source("competitor_offers", "Competitor offers seen per region", "Market intelligence", "csv",
           (_c("offer_id", "string"), _c("region", "string", allowed=REGIONS), _c("event_time", "timestamp"),
            _c("competitor", "string", allowed=("rival_a", "rival_b", "rival_c")),
            _c("discount_pct", "float64", min=0, max=90)),
           key=("offer_id",), event_time="event_time"),
    Source("retention_contacts", "Retention campaigns: who each targeted, and with which arm (control or an "
           "intervention), assigned at random", "Campaign management", "csv",
           (_c("contact_id", "string"), _c("campaign_id", "string"), CID, _c("contact_date", "date"),
            _c("arm", "string", allowed=ARMS)),
           key=("contact_id",), may_be_empty=True),
)

SOURCES_BY_NAME: dict[str, Source] = {s.name: s for s in SOURCES}
