"""Knowledge: documents, chunks of history and documents with their vectors, full-text
search over them, and which turns the indexer has read.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SQLITE_FULL_TEXT = [
    # External content: the text is stored once, in knowledge_chunks.
    "CREATE VIRTUAL TABLE knowledge_fts USING fts5("
    "heading, text, content='knowledge_chunks', content_rowid='id', "
    "tokenize='porter unicode61')",
    "CREATE TRIGGER knowledge_chunks_ai AFTER INSERT ON knowledge_chunks BEGIN "
    "INSERT INTO knowledge_fts(rowid, heading, text) VALUES (new.id, new.heading, new.text); "
    "END",
    "CREATE TRIGGER knowledge_chunks_ad AFTER DELETE ON knowledge_chunks BEGIN "
    "INSERT INTO knowledge_fts(knowledge_fts, rowid, heading, text) "
    "VALUES ('delete', old.id, old.heading, old.text); END",
]
POSTGRESQL_FULL_TEXT = [
    "ALTER TABLE knowledge_chunks ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
    "(to_tsvector('english', heading || ' ' || text)) STORED",
    "CREATE INDEX ix_knowledge_chunks_search_vector ON knowledge_chunks USING gin (search_vector)",
]


def upgrade() -> None:
    op.add_column(
        "conversations",
        sa.Column("direct", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    # Every turn already stored is read by the indexer at the next start.
    op.add_column(
        "turns", sa.Column("indexed", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column("turns", sa.Column("knowledge_chunk_id", sa.Integer(), nullable=True))
    op.create_index(
        "ix_turns_pending",
        "turns",
        ["id"],
        sqlite_where=sa.text("indexed = 0"),
        postgresql_where=sa.text("NOT indexed"),
    )
    op.create_index("ix_turns_knowledge_chunk_id", "turns", ["knowledge_chunk_id"])
    op.create_table(
        "knowledge_documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.UnicodeText(), nullable=False),
        sa.Column("name", sa.Unicode(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("title", sa.UnicodeText(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("channels", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("added_by", sa.Unicode(255), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_documents")),
        sa.UniqueConstraint("source", name=op.f("uq_knowledge_documents_source")),
    )
    op.create_table(
        "knowledge_chunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=True),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(255), nullable=False),
        sa.Column("thread", sa.String(255), nullable=False),
        sa.Column("direct", sa.Boolean(), nullable=False),
        sa.Column("heading", sa.UnicodeText(), nullable=False),
        sa.Column("text", sa.UnicodeText(), nullable=False),
        sa.Column("message_id", sa.String(255), nullable=True),
        sa.Column("authors", sa.UnicodeText(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["knowledge_documents.id"],
            name=op.f("fk_knowledge_chunks_document_id_knowledge_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_chunks")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_knowledge_chunks_platform_channel", "knowledge_chunks", ["platform", "channel"]
    )
    op.create_index("ix_knowledge_chunks_document_id", "knowledge_chunks", ["document_id"])
    statements = (
        SQLITE_FULL_TEXT if op.get_bind().dialect.name == "sqlite" else POSTGRESQL_FULL_TEXT
    )
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE knowledge_fts")
    op.drop_table("knowledge_chunks")
    op.drop_table("knowledge_documents")
    op.drop_index("ix_turns_knowledge_chunk_id", "turns")
    op.drop_index("ix_turns_pending", "turns")
    # Not batch mode (see 0003): SQLite 3.35+ drops a column in place.
    op.drop_column("turns", "knowledge_chunk_id")
    op.drop_column("turns", "indexed")
    op.drop_column("conversations", "direct")
