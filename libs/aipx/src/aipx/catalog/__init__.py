"""Machine-readable catalogues shipped with the library: topics.yaml and functions.yaml."""

from pathlib import Path

CATALOG_DIR = Path(__file__).resolve().parent
TOPICS_FILE = CATALOG_DIR / "topics.yaml"
FUNCTIONS_FILE = CATALOG_DIR / "functions.yaml"
