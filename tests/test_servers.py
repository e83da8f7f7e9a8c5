"""The test servers themselves (tests/servers.py): they answer, and a restart keeps the port (and, for
PostgreSQL, the data), which is what the outage tests rely on."""

from __future__ import annotations

import psycopg
import redis

from tests.servers import PostgresServer, RedisServer


def test_postgres_restarts_on_the_same_port_with_its_data(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (n INTEGER)")
        conn.execute("INSERT INTO kept VALUES (42)")
    port = postgres_server.port
    postgres_server.stop()
    postgres_server.start()
    assert postgres_server.port == port and postgres_server.url.endswith(f":{port}/postgres")
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT n FROM kept").fetchone() == (42,)


def test_redis_answers_and_restarts_on_the_same_port(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.ping()
        port = redis_server.port
        redis_server.stop()
        redis_server.start()
        assert redis_server.port == port
        assert client.ping()  # redis-py reconnects by itself
    finally:
        client.close()
