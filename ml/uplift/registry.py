"""The uplift model in MLflow: logged as a pyfunc (churn without contact and the drop per
intervention for a frame of features), registered under its own name with the same aliases as
the churn model, and loaded back as an ``UpliftModel``."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel
from mlflow.tracking import MlflowClient

from core.settings import Settings
from ml import registry
from ml.uplift.model import UpliftModel

ARTIFACT = "uplift"
DESCRIPTION = "Drop in churn probability per retention intervention, learnt from past campaigns (XGBoost)."


class UpliftPyfunc(PythonModel):
    """``predict(features frame)``: ``p_churn`` without contact and ``drop_<intervention>``."""

    def load_context(self, context: Any) -> None:
        self.model = UpliftModel.load(Path(context.artifacts[ARTIFACT]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        p0, drops = self.model.predict(model_input[self.model.feature_names].to_numpy(dtype="float32"))
        return pd.DataFrame({"p_churn": p0, **{f"drop_{n}": drops[:, j]
                                               for j, n in enumerate(self.model.interventions)}})


def log_uplift(model: UpliftModel) -> str:
    """Log the model in the active run; returns its URI (what gets registered)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = model.save(Path(tmp) / ARTIFACT)
        info = mlflow.pyfunc.log_model(name="uplift_model", python_model=UpliftPyfunc(),
                                       artifacts={ARTIFACT: str(folder)}, pip_requirements=["xgboost", "pandas"])
    return info.model_uri


def register_uplift(client: MlflowClient, settings: Settings, model_uri: str, tags: dict[str, str]) -> str:
    version = registry.register(client, settings, model_uri, tags, settings.registry.uplift_model_name, DESCRIPTION)
    return str(version.version)


def load_uplift(settings: Settings, ref: str = registry.CHAMPION) -> tuple[UpliftModel, str]:
    """A registered uplift model by alias or version number."""
    client = registry.setup(settings)
    name = settings.registry.uplift_model_name
    if str(ref).isdigit():
        try:
            mv = client.get_model_version(name, str(ref))
        except MlflowException:
            mv = None
    else:
        mv = registry.version_by_alias(client, settings, ref, name)
    if mv is None:
        raise registry.ModelNotFound(f"no uplift model '{ref}' of '{name}' in {settings.tracking_uri}: "
                                     "run `churn uplift`")
    folder = mlflow.artifacts.download_artifacts(f"models:/{name}/{mv.version}")
    return UpliftModel.load(Path(folder) / "artifacts" / ARTIFACT), str(mv.version)
