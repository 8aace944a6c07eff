"""The README's feature table is rendered from the feature definitions, never restated."""
from pathlib import Path

from features.definitions import FEATURES


def test_readme_feature_table_matches_the_definitions():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert FEATURES.markdown_table() in readme
