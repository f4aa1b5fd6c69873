"""The delivery tables: one row per newsletter send, recipient, sending run and test send.

They live in the registry's database under the registry's schema version
(``clinicpress.outputs.registry.SCHEMA_VERSION``): ``registry.migrate``
creates them with the registry's own tables, whichever of ``Registry`` or
``DeliveryStore`` opens the database first.
"""

from __future__ import annotations

import enum

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from clinicpress.outputs.registry import UTCDateTime


class State(enum.StrEnum):
    """A recipient's state (see the package docstring for the transitions)."""

    PENDING = "pending"
    CLAIMED = "claimed"
    ACCEPTED = "accepted"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    EXCLUDED = "excluded"


class Approval(enum.StrEnum):
    """A send's second-person approval ([newsletter] approval_required; ``approval.py``)."""

    NOT_REQUIRED = "not-required"  # sent as soon as the release is live
    AWAITING = "awaiting"  # sends to nobody until someone other than triggered_by approves
    APPROVED = "approved"


# Apart from the registry's MetaData: the registry imports this module only when it migrates.
metadata = MetaData()

sends = Table(
    "newsletter_sends",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(80), nullable=False),
    Column("version", String(64), nullable=False),
    Column("title", Text, nullable=False),
    # The Date header of every recipient's message: fixed at the first enqueue.
    Column("published_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("candidates", Integer, nullable=False),
    Column("completed_at", UTCDateTime),
    Column("lease_owner", String(200)),  # "<host>:<pid>:<run id>"
    Column("lease_until", UTCDateTime),
    # Schema 6 (issue 15): who triggered the publish that enqueued the send (fixed then, like the
    # recipients; NULL for a send enqueued before), and its approval. Added to an existing table
    # by registry_schema.migrate(): nullable or with a server default.
    Column("triggered_by", Text),
    Column("approval", String(16), nullable=False, server_default=Approval.NOT_REQUIRED.value),
    Column("approved_by", Text),
    Column("approved_at", UTCDateTime),
    # Schema 11: the hash of the text the send carries (sources/versioning.content_hash; NULL for a
    # send enqueued before). A later version with the same text, a template or site change, continues
    # this send instead of starting a second one (store.ensure_send): nobody gets one text twice.
    Column("content_hash", String(64)),
    UniqueConstraint("slug", "version", name="uq_newsletter_send_slug_version"),
)

recipients_table = Table(
    "newsletter_recipients",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("send_id", ForeignKey("newsletter_sends.id", ondelete="CASCADE"), nullable=False),
    Column("address_key", String(320), nullable=False),
    Column("address", Text, nullable=False),
    Column("unsubscribe_url", Text),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("data_started", Boolean, nullable=False, default=False),
    Column("run_id", String(32)),
    Column("message_id", Text),  # to look the message up in the server's log
    Column("smtp_response", Text),
    Column("last_error", Text),
    Column("claimed_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("send_id", "address_key", name="uq_newsletter_recipient"),
    Index("ix_newsletter_recipients_state", "send_id", "state"),
)

runs = Table(
    "newsletter_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("send_id", ForeignKey("newsletter_sends.id", ondelete="CASCADE"), nullable=False),
    Column("owner", String(200), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("sent", Integer, nullable=False, default=0),
    Column("complete", Boolean, nullable=False, default=False),
    Column("summary", Text),
)

test_sends = Table(
    "newsletter_test_sends",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(80), nullable=False),
    Column("version", String(64), nullable=False),
    Column("address", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("message_id", Text),
    Column("smtp_response", Text),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
)
