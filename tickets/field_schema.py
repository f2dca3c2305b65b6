"""Tables of the engineers' field work (migration 0005): visits, photos, personal links.

* ``visits``: one engineer on site for one ticket, from arrival to departure; each visit
  is one 服务回执单 (service receipt), so the records, parts and sign-off made during it
  point at it (``service_records.visit_id``, ``sign_offs.visit_id``).
* ``photos``: a picture taken on site; the file lives in the photo directory next to
  the store under ``file`` (a name the daemon chose, never the uploader's), the row
  keeps its checked type, size and SHA-256.
* ``engineer_links``: a personal link issued to an engineer (web/engineer_links.py);
  the signature proves who issued it, this row lets it be revoked before it expires.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from elvwatch.tickets.store import _ROW_ID, Base, UTCDateTime


class VisitRow(Base):
    __tablename__ = "visits"

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    engineer: Mapped[str] = mapped_column(Text)
    arrived_at: Mapped[datetime] = mapped_column(UTCDateTime)
    departed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(Text)


class PhotoRow(Base):
    __tablename__ = "photos"

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id"))
    file: Mapped[str] = mapped_column(String(80))
    content_type: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    caption: Mapped[str] = mapped_column(Text)
    uploaded_by: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class EngineerLinkRow(Base):
    __tablename__ = "engineer_links"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    engineer: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(Text)
