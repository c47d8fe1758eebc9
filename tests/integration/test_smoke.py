def test_health_reports_real_postgres_and_redis(client):
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok", "store": "ok (redis)", "sweep": {"mode": "rq cron"}}


def test_principals_can_log_in(principals, client):
    for kind in ("admin", "bot", "node"):
        me = client.get("/api/v1/auth/me", headers=principals.of(kind).headers)
        assert me.status_code == 200
        assert me.json["kind"] == kind
