"""docs/openapi.json is the generated spec, not a hand-edited one: regenerate it when the API changes."""

import json
from pathlib import Path

from control_api import create_app
from tests.conftest import make_settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_committed_spec_matches_the_code(tmp_path):
    app = create_app(make_settings(f"sqlite:///{tmp_path / 'unused.sqlite3'}"))
    assert json.loads(DOC.read_text()) == json.loads(json.dumps(app.spec)), (
        "docs/openapi.json is stale; regenerate it with the command in docs/api.md"
    )
