"""A tiny blog: posts in SQLite, kept in the environment's persistent storage when it has one.

    GET  /         the posts, newest first (HTML)
    POST /posts    a new post from the form field or JSON key `title`
    GET  /health   200 once the app is up

`flask --app blog init-db` creates the table if it is missing (the Procfile's release command:
it runs for every release, so it must be safe to run again). `flask --app blog seed-db` writes the
first post: a one-time step, run once with `shipyard run` (a second run writes it again).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import click
from flask import Flask, g, redirect, request
from markupsafe import escape

app = Flask(__name__)


def database_path() -> Path:
    """$SHIPYARD_STORAGE_DIR/blog.db: storage outlives releases, the release's directory not."""
    storage = os.environ.get("SHIPYARD_STORAGE_DIR")
    return Path(storage) / "blog.db" if storage else Path("blog.db")


def database() -> sqlite3.Connection:
    if "database" not in g:
        g.database = sqlite3.connect(database_path())
    connection: sqlite3.Connection = g.database
    return connection


@app.teardown_appcontext
def close_database(_error: BaseException | None) -> None:
    connection = g.pop("database", None)
    if connection is not None:
        connection.close()


@app.cli.command("init-db")
def init_db() -> None:
    """Create the posts table if it is missing: safe to run for every release."""
    path = database_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS post ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " title TEXT NOT NULL,"
            " created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
        )
    click.echo(f"database ready: {path}")


@app.cli.command("seed-db")
def seed_db() -> None:
    """Write the welcome post: once, by hand (`shipyard run`), never in the release phase."""
    with sqlite3.connect(database_path()) as connection:
        connection.execute("INSERT INTO post (title) VALUES (?)", ("Welcome to the blog",))
    click.echo("welcome post written")


@app.get("/")
def index() -> str:
    rows = database().execute("SELECT title, created_at FROM post ORDER BY id DESC").fetchall()
    items = "".join(f"<li>{escape(title)} <small>{created}</small></li>" for title, created in rows)
    return (
        "<!doctype html><title>Blog</title><h1>Blog</h1>"
        '<form method="post" action="/posts"><input name="title"> <button>Post</button></form>'
        f"<ul>{items}</ul>"
    )


@app.post("/posts")
def create_post() -> object:
    if request.is_json:
        payload = request.get_json(silent=True)
        title = payload.get("title") if isinstance(payload, dict) else None
    else:
        title = request.form.get("title")
    if not isinstance(title, str) or not title.strip():
        return {"error": "a post needs a title"}, 400
    connection = database()
    cursor = connection.execute("INSERT INTO post (title) VALUES (?)", (title.strip(),))
    connection.commit()
    if request.is_json:
        return {"id": cursor.lastrowid, "title": title.strip()}, 201
    return redirect("/", code=303)


@app.get("/health")
def health() -> str:
    return "ok"
