"""The source-system simulator: synthetic raw data of a telecom-like subscription business in
the 23 sources of ``features.sources`` (their schemas and contracts), driven by a latent churn
process, with counted defects, optional drift scenarios, and a ground truth kept apart from the
raw data. It stands in for the business's own systems: no model or feature code imports it.

Layout under ``out``::

    raw/<source>/date=YYYY-MM-DD/part-<shard>.<ext>   event streams, by arrival date
    raw/<source>/part-<shard>.<ext>                   dimension tables
    raw/_manifest.json                                counts to reconcile; written last
    truth/customers.parquet                           latent propensity, churn date, uplifts

How it fits together: ``generator`` (driver) -> ``shard`` (one Ray task: ``population`` ->
``behaviour`` -> ``streams`` -> ``defects`` -> ``text``/``writer``); ``market`` and ``drift``
are built once and shared by every shard; ``retention`` runs the business's past campaigns and,
when given one, a campaign the platform planned.
"""
from simulator.defects import KINDS as DEFECT_KINDS
from simulator.drift import SCENARIOS
from simulator.generator import GenerationResult, generate
from simulator.retention import AppliedCampaign

__all__ = ["DEFECT_KINDS", "SCENARIOS", "AppliedCampaign", "GenerationResult", "generate"]
