"""The command line: tokens signed with the configured secret, and the schema export."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jwt

from app.catalog.search import TERM_SCORES, rank_token

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "JWT_SECRET"}
    return subprocess.run(
        [sys.executable, "-m", "app", *args], cwd=ROOT, env={**base, **(env or {})},
        capture_output=True, text=True, timeout=60,
    )


def test_token_is_signed_with_jwt_secret_and_carries_sub_roles_exp(tmp_path):
    done = run_cli("token", "alice", "--role", "organizer", "--role", "staff",
                   env={"JWT_SECRET": "s3cret-s3cret-s3cret-s3cret-s3cret", "DATA_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    claims = jwt.decode(done.stdout.strip(), "s3cret-s3cret-s3cret-s3cret-s3cret", algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert claims["roles"] == ["organizer", "staff"]
    assert claims["exp"] > claims["iat"]


def test_token_uses_the_dev_secret_of_make_run_when_no_jwt_secret(tmp_path):
    (tmp_path / "dev-jwt-secret").write_text("the-dev-secret-made-by-make-run-0123")
    done = run_cli("token", "bob", env={"DATA_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert jwt.decode(done.stdout.strip(), "the-dev-secret-made-by-make-run-0123", algorithms=["HS256"])["sub"] == "bob"


def test_token_without_any_secret_fails_clearly(tmp_path):
    done = run_cli("token", "carol", env={"DATA_DIR": str(tmp_path)})
    assert done.returncode == 2
    assert "JWT_SECRET" in done.stderr


def test_unknown_role_is_refused(tmp_path):
    done = run_cli("token", "dave", "--role", "superuser", env={"JWT_SECRET": "x" * 32, "DATA_DIR": str(tmp_path)})
    assert done.returncode != 0
    assert "invalid choice" in done.stderr


def test_serve_refuses_to_start_without_a_database(tmp_path):
    done = run_cli("serve", env={"DATA_DIR": str(tmp_path), "JWT_SECRET": "x" * 32, "MONGODB_URI": ""})
    assert done.returncode == 2
    assert "MONGODB_URI" in done.stderr


def test_seed_demo_loads_a_catalog_through_the_services(tmp_path, mongo_uri):
    """`make seed-demo N=...`: N events, their venues, and words as skewed as a real catalog's."""
    from pymongo import MongoClient

    done = run_cli("seed-demo", "--events", "300", env={"MONGODB_URI": mongo_uri, "DATA_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    with MongoClient(mongo_uri, directConnection=True) as client:
        db = client.get_default_database()
        assert db.events.count_documents({}) == 300
        assert db.venues.count_documents({}) == 160
        # Made as the API makes them: searchable, deduplicated, by a demo organizer.
        event = db.events.find_one({})
        assert event["searchRanks"] and event["dedupeKey"] and event["organizerId"] == "demo-organizer"
        # Some words are common (each in about one event in ten), most are rare.
        common = db.events.count_documents({"searchRanks": {"$in": [rank_token(s, "live") for s in TERM_SCORES]}})
        assert 5 <= common <= 60, common
