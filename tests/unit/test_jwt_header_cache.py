"""flask-jwt-extended's second, unverified read of a token's header goes through a per-token cache that answers
exactly what PyJWT does, and hands each caller its own copy."""

from __future__ import annotations

import jwt
import pytest
from flask import Flask
from flask_jwt_extended import view_decorators

from control_api import jwt_claims


def test_the_cache_answers_what_pyjwt_reads_and_each_caller_gets_a_copy():
    token = jwt.encode({"sub": "1"}, "k" * 32, algorithm="HS256", headers={"kid": "one"})
    first = jwt_claims.unverified_header(token)
    assert first == jwt.get_unverified_header(token)
    first["kid"] = "changed by a caller"
    assert jwt_claims.unverified_header(token) == jwt.get_unverified_header(token)


def test_a_malformed_token_still_fails_as_pyjwt_fails_and_is_not_kept():
    before = jwt_claims._header_of.cache_info().currsize
    with pytest.raises(jwt.DecodeError):
        jwt_claims.unverified_header("not-a-token")
    assert jwt_claims._header_of.cache_info().currsize == before


def test_the_manager_installs_it_where_flask_jwt_extended_reads_headers():
    assert hasattr(view_decorators, "get_unverified_jwt_headers")  # the name the library reads it through
    jwt_claims.CachingJWTManager(Flask(__name__))
    assert view_decorators.get_unverified_jwt_headers is jwt_claims.unverified_header
