"""Baseline: the schema as the models defined it when migrations began (issue #8).

Every table is created only when it is missing, and every index likewise, so the same revision
also adopts a database made before migrations (by `SQLModel.metadata.create_all`, perhaps from
an older listener that lacked some tables or indexes): what it has is kept, rows included, and
what it lacks is added. Never edit this file: change the schema in a new revision.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

TABLES = (
    "posts",
    "post_authors",
    "engagement_snapshots",
    "decisions",
    "alerts",
    "outbox",
    "feedback",
    "alert_links",
    "incidents",
    "silences",
    "silenced_deliveries",
    "digests",
    "digest_items",
    "escalations",
    "acks",
    "cursors",
    "source_health",
    "geocode_cache",
)


def _table(name: str, *parts: Any) -> None:
    if not sa.inspect(op.get_bind()).has_table(name):
        op.create_table(name, *parts)


def _index(table: str, name: str, columns: list[str]) -> None:
    present = {index["name"] for index in sa.inspect(op.get_bind()).get_indexes(table)}
    if name not in present:
        op.create_index(name, table, columns, unique=False)


def upgrade() -> None:
    _table(
        "cursors",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("value", sa.String(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    _table(
        "digests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("receiver", sa.String(), nullable=False),
        sa.Column("route", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("external_ref", sa.String(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    _index("digests", "ix_digests_bucket", ["receiver", "route", "status", "due_at"])
    _index("digests", "ix_digests_due_at", ["due_at"])
    _index("digests", "ix_digests_status", ["status"])
    _table(
        "geocode_cache",
        sa.Column("query", sa.String(), nullable=False),
        sa.Column("found", sa.Boolean(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("country", sa.String(), nullable=True),
        sa.Column("looked_up_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("query"),
    )
    _table(
        "posts",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    _table(
        "silences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("matchers", sa.String(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    _index("silences", "ix_silences_ends_at", ["ends_at"])
    _table(
        "source_health",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("last_poll_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_new_post_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_posts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("silent_since", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    _table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.String(), nullable=False),
        sa.Column("org", sa.String(), nullable=False),
        sa.Column("branch", sa.String(), nullable=True),
        sa.Column("search", sa.String(), nullable=False),
        sa.Column("level", sa.String(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["post_id"],
            ["posts.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("post_id", "org"),
    )
    _index("alerts", "ix_alerts_post_id", ["post_id"])
    _table(
        "decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.String(), nullable=False),
        sa.Column("org", sa.String(), nullable=True),
        sa.Column("branch", sa.String(), nullable=True),
        sa.Column("search", sa.String(), nullable=True),
        sa.Column("urgency", sa.String(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("labels", sa.String(), nullable=False),
        sa.Column("evidence", sa.String(), nullable=False),
        sa.Column("distance_km", sa.Float(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["post_id"],
            ["posts.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    _index("decisions", "ix_decisions_post_id", ["post_id"])
    _table(
        "engagement_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.String(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("likes", sa.Integer(), nullable=True),
        sa.Column("reposts", sa.Integer(), nullable=True),
        sa.Column("replies", sa.Integer(), nullable=True),
        sa.Column("per_hour", sa.Float(), nullable=True),
        sa.Column("raised", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["post_id"],
            ["posts.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    _index("engagement_snapshots", "ix_engagement_snapshots_post_time", ["post_id", "seen_at"])
    _table(
        "post_authors",
        sa.Column("post_id", sa.String(), nullable=False),
        sa.Column("handle", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["post_id"],
            ["posts.id"],
        ),
        sa.PrimaryKeyConstraint("post_id"),
    )
    _index("post_authors", "ix_post_authors_handle_time", ["handle", "created_at"])
    _table(
        "acks",
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("by", sa.String(), nullable=True),
        sa.Column("via", sa.String(), nullable=False),
        sa.Column("acked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
        ),
        sa.PrimaryKeyConstraint("alert_id"),
    )
    _table(
        "alert_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("parent_alert_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
        ),
        sa.ForeignKeyConstraint(
            ["parent_alert_id"],
            ["alerts.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("alert_id", "parent_alert_id"),
    )
    _index("alert_links", "ix_alert_links_alert_id", ["alert_id"])
    _index("alert_links", "ix_alert_links_parent_alert_id", ["parent_alert_id"])
    _table(
        "escalations",
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("route", sa.String(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("receivers", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("follow_up_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
        ),
        sa.PrimaryKeyConstraint("alert_id"),
    )
    _index("escalations", "ix_escalations_due_at", ["due_at"])
    _index("escalations", "ix_escalations_status", ["status"])
    _table(
        "feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.String(), nullable=False),
        sa.Column("org", sa.String(), nullable=False),
        sa.Column("search", sa.String(), nullable=False),
        sa.Column("verdict", sa.String(), nullable=False),
        sa.Column("branch", sa.String(), nullable=True),
        sa.Column("by", sa.String(), nullable=True),
        sa.Column("via", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
        ),
        sa.ForeignKeyConstraint(
            ["post_id"],
            ["posts.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    _index("feedback", "ix_feedback_alert_id", ["alert_id"])
    _index("feedback", "ix_feedback_post_id", ["post_id"])
    _table(
        "incidents",
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("org", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("level", sa.String(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
        ),
        sa.PrimaryKeyConstraint("alert_id"),
    )
    _index("incidents", "ix_incidents_org", ["org"])
    _table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("receiver", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("external_ref", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("alert_id", "receiver"),
    )
    _index("outbox", "ix_outbox_alert_id", ["alert_id"])
    _index("outbox", "ix_outbox_receiver_queue", ["receiver", "status", "id"])
    _index("outbox", "ix_outbox_status", ["status"])
    _table(
        "digest_items",
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("digest_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["outbox.id"],
        ),
        sa.ForeignKeyConstraint(
            ["digest_id"],
            ["digests.id"],
        ),
        sa.PrimaryKeyConstraint("delivery_id"),
    )
    _index("digest_items", "ix_digest_items_digest_id", ["digest_id"])
    _table(
        "silenced_deliveries",
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("silence_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["outbox.id"],
        ),
        sa.ForeignKeyConstraint(
            ["silence_id"],
            ["silences.id"],
        ),
        sa.PrimaryKeyConstraint("delivery_id"),
    )
    _index("silenced_deliveries", "ix_silenced_deliveries_silence_id", ["silence_id"])


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)
