"""The README's feature table is rendered from the feature definitions, never restated."""
from features.definitions import FEATURES

from support import REPO


def test_readme_feature_table_matches_the_definitions():
    readme = (REPO / "README.md").read_text()
    assert FEATURES.markdown_table() in readme
