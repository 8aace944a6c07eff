"""The customer features of the generated business, defined once.

Each definition names the feature, its type, description, source, window and default, and
says how it is computed. The Spark ETL (``features.spark_features``), the online-store layout,
the Serve request schema and the README's feature table are all derived from this list.
"""
from __future__ import annotations

from dataclasses import dataclass

from features.feature_set import FeatureDtype, FeatureSet, FeatureSpec
from features.sources import SOURCES_BY_NAME


@dataclass(frozen=True)
class WindowAgg:
    """Aggregate of an event stream over the ``window_days`` up to the as-of date."""

    source: str
    fn: str  # count | sum | mean | max | last | days_since
    column: str | None = None
    where: tuple[str, tuple[str, ...]] | None = None  # (column, allowed values)


@dataclass(frozen=True)
class RegionAgg:
    """Aggregate of a per-region stream over the window, joined on the customer's region."""

    source: str
    fn: str  # sum | mean | max | count
    column: str | None = None


@dataclass(frozen=True)
class Attribute:
    """A customer attribute at the as-of date: a value, a category code, or days since a date."""

    table: str  # customer | subscription | plan | device
    column: str
    transform: str = "value"  # value | code | days_since | count | max | any


@dataclass(frozen=True)
class Ratio:
    """numerator / denominator of two other features (missing when the denominator is 0)."""

    numerator: str
    denominator: str


Compute = WindowAgg | RegionAgg | Attribute | Ratio


@dataclass(frozen=True)
class FeatureDefinition:
    spec: FeatureSpec
    compute: Compute


def _categories(source: str, column: str) -> tuple[str, ...]:
    allowed = SOURCES_BY_NAME[source].column(column).allowed
    assert allowed is not None, f"{source}.{column} has no declared categories"
    return allowed


def _f(name: str, dtype: FeatureDtype, description: str, compute: Compute, *,
       window: int | None = None, default: float | None = 0.0,
       categories: tuple[str, ...] | None = None) -> FeatureDefinition:
    source = getattr(compute, "source", None) or getattr(compute, "table", None) or "derived"
    return FeatureDefinition(FeatureSpec(name, dtype, description, source, window, default, categories), compute)


def _count(name: str, source: str, window: int, description: str,
           where: tuple[str, tuple[str, ...]] | None = None) -> FeatureDefinition:
    return _f(name, "int", description, WindowAgg(source, "count", where=where), window=window)


def _code(name: str, table: str, source: str, column: str, description: str) -> FeatureDefinition:
    return _f(name, "category", description, Attribute(table, column, "code"),
              default=None, categories=_categories(source, column))


DEFINITIONS: tuple[FeatureDefinition, ...] = (
    # customer profile
    _f("tenure_days", "int", "Days since signup", Attribute("customer", "signup_date", "days_since")),
    _f("age", "int", "Customer age", Attribute("customer", "age"), default=None),
    _f("household_size", "int", "People in the household", Attribute("customer", "household_size"), default=None),
    _f("has_dependents", "bool", "Household has dependents", Attribute("customer", "has_dependents"), default=None),
    _code("income_band", "customer", "demographics", "income_band", "Income band"),
    _code("region", "customer", "crm_customers", "region", "Home region"),
    _code("segment", "customer", "crm_customers", "segment", "Consumer or small business"),
    _code("acquisition_channel", "customer", "crm_customers", "acquisition_channel", "How the customer joined"),
    _f("email_opt_in", "bool", "Accepts marketing e-mail", Attribute("customer", "email_opt_in"), default=None),
    # contract and plan at the as-of date
    _code("contract_type", "subscription", "subscriptions", "contract_type", "Contract type"),
    _code("payment_method", "subscription", "subscriptions", "payment_method", "Payment method"),
    _f("paperless_billing", "bool", "Paperless billing", Attribute("subscription", "paperless_billing"), default=None),
    _f("subscription_days", "int", "Days since the current subscription started",
       Attribute("subscription", "start_date", "days_since")),
    _f("monthly_price", "float", "Monthly price of the current plan", Attribute("plan", "monthly_price"), default=None),
    _f("plan_data_gb", "float", "Data allowance of the current plan", Attribute("plan", "data_gb"), default=None),
    _code("plan_tier", "plan", "plans_catalogue", "tier", "Tier of the current plan"),
    _count("plan_changes_90d", "plan_changes", 90, "Plan changes"),
    _count("downgrades_90d", "plan_changes", 90, "Plan downgrades", where=("direction", ("downgrade",))),
    # devices
    _f("devices", "int", "Registered devices", Attribute("device", "device_id", "count")),
    _f("device_age_months_max", "int", "Age of the oldest device", Attribute("device", "device_age_months", "max"),
       default=None),
    _f("device_financed", "bool", "Any device on a financing plan", Attribute("device", "financed", "any")),
    # usage
    _f("data_mb_7d", "float", "Mean daily data use", WindowAgg("usage_daily", "mean", "data_mb"), window=7,
       default=None),
    _f("data_mb_30d", "float", "Mean daily data use", WindowAgg("usage_daily", "mean", "data_mb"), window=30,
       default=None),
    _f("voice_min_7d", "float", "Mean daily voice minutes", WindowAgg("usage_daily", "mean", "voice_minutes"),
       window=7, default=None),
    _f("voice_min_30d", "float", "Mean daily voice minutes", WindowAgg("usage_daily", "mean", "voice_minutes"),
       window=30, default=None),
    _f("sms_30d", "float", "Mean daily SMS", WindowAgg("usage_daily", "mean", "sms_count"), window=30, default=None),
    _f("dropped_calls_30d", "int", "Dropped calls", WindowAgg("usage_daily", "sum", "dropped_calls"), window=30),
    _f("usage_active_days_30d", "int", "Days with usage records", WindowAgg("usage_daily", "count"), window=30),
    _f("data_trend_7_30", "float", "Data use, last 7 days vs last 30 (1 = flat)", Ratio("data_mb_7d", "data_mb_30d"),
       default=None),
    _f("voice_trend_7_30", "float", "Voice use, last 7 days vs last 30 (1 = flat)",
       Ratio("voice_min_7d", "voice_min_30d"), default=None),
    # digital behaviour
    _count("app_sessions_7d", "app_sessions", 7, "App sessions"),
    _count("app_sessions_30d", "app_sessions", 30, "App sessions"),
    _count("app_crashes_30d", "app_sessions", 30, "App sessions that crashed", where=("crashed", ("true",))),
    _f("days_since_app_session", "int", "Days since the last app session", WindowAgg("app_sessions", "days_since"),
       window=90, default=91.0),
    _count("web_visits_30d", "web_visits", 30, "Website visits"),
    _count("cancel_page_visits_30d", "web_visits", 30, "Visits to the cancellation page", where=("page", ("cancel",))),
    # support and satisfaction
    _count("tickets_30d", "support_tickets", 30, "Support tickets"),
    _count("tickets_90d", "support_tickets", 90, "Support tickets"),
    _count("network_tickets_30d", "support_tickets", 30, "Network tickets", where=("category", ("network",))),
    _count("billing_tickets_30d", "support_tickets", 30, "Billing tickets", where=("category", ("billing",))),
    _count("unresolved_tickets_90d", "ticket_resolutions", 90, "Tickets closed unresolved or escalated",
           where=("resolution", ("unresolved", "escalated"))),
    _f("ticket_satisfaction_90d", "float", "Mean satisfaction with ticket handling (1-5)",
       WindowAgg("ticket_resolutions", "mean", "satisfaction"), window=90, default=None),
    _count("complaints_90d", "complaints", 90, "Formal complaints"),
    _f("complaint_severity_max_90d", "int", "Worst complaint severity", WindowAgg("complaints", "max", "severity"),
       window=90),
    _f("nps_last", "int", "Latest NPS answer (0-10)", WindowAgg("nps_surveys", "last", "score"), window=90,
       default=None),
    _f("days_since_nps", "int", "Days since the latest NPS answer", WindowAgg("nps_surveys", "days_since"),
       window=90, default=91.0),
    # billing
    _f("invoice_mean_90d", "float", "Mean invoice amount", WindowAgg("billing_invoices", "mean", "amount"),
       window=90, default=None),
    _f("invoice_last", "float", "Latest invoice amount", WindowAgg("billing_invoices", "last", "amount"),
       window=90, default=None),
    _f("invoice_change", "float", "Latest invoice vs the 90-day mean (1 = flat)",
       Ratio("invoice_last", "invoice_mean_90d"), default=None),
    _count("late_payments_90d", "late_payments", 90, "Late payments"),
    _f("days_late_90d", "int", "Total days late", WindowAgg("late_payments", "sum", "days_late"), window=90),
    _f("refund_amount_90d", "float", "Refunds and credits", WindowAgg("refunds", "sum", "amount"), window=90),
    # marketing
    _count("marketing_touches_30d", "marketing_touches", 30, "Marketing contacts received"),
    _count("campaign_responses_90d", "campaign_responses", 90, "Responses to marketing contacts"),
    _count("referrals_90d", "referrals", 90, "Friends referred"),
    # region context
    _f("region_outage_min_30d", "float", "Network outage minutes in the home region",
       RegionAgg("network_quality", "sum", "outage_minutes"), window=30),
    _f("region_latency_7d", "float", "Mean network latency in the home region",
       RegionAgg("network_quality", "mean", "latency_ms"), window=7, default=None),
    _f("competitor_offers_30d", "int", "Competitor offers seen in the home region",
       RegionAgg("competitor_offers", "count"), window=30),
    _f("competitor_discount_max_30d", "float", "Best competitor discount in the home region (%)",
       RegionAgg("competitor_offers", "max", "discount_pct"), window=30),
)

FEATURES = FeatureSet(tuple(d.spec for d in DEFINITIONS))
