"""Where the console opens its cookie session: RFC 6265's path-match, the rule browsers send cookies by."""

import pytest

from control_api.console.session import path_matches


@pytest.mark.parametrize(
    ("path", "cookie_path", "expected"),
    [
        ("/admin", "/admin", True),
        ("/admin/", "/admin", True),
        ("/admin/nodes/3", "/admin", True),
        ("/administrator", "/admin", False),
        ("/admin-login", "/admin", False),
        ("/api/v1/plans", "/admin", False),
        ("/", "/admin", False),
        ("/admin/x", "/admin/", True),
        ("/admin", "/admin/", False),
        ("/anything", "/", True),
    ],
)
def test_path_match(path: str, cookie_path: str, expected: bool) -> None:
    assert path_matches(path, cookie_path) is expected
