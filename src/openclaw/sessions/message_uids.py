"""The uid of a message that lives in an openclaw-rs SQLite file (`sessions.db`).

The importer and the dual-mode mirror derive the same uid for the same row, so neither
duplicates the other, and two machines' files never share a uid, so neither drops the
other's messages (`ON CONFLICT (uid) DO NOTHING`). Three layouts, told apart by two bits
next to the RFC 9562 variant (UUID version 8, a custom layout):

- file (01): 60 bits derived from the file's id (see `file_identity`), 60 bits of row id.
  Every row written after openclaw gave the file its id.
- anchored (10): 37 bits derived from agent and session key, the message's time (43 bits
  of epoch ms) and 40 bits of row id. The legacy rows, written before the file had an id
  (or in a file that can never get one, being read-only): their uid needs no id, so it
  is the same wherever the file is imported from. Two machines' rows differ unless they
  have the same session, the same row id and the same millisecond; the rows of a copy of
  a file are the same rows, and are stored once.
- old (00): what an older openclaw gave every row: 64 bits naming the agent, 62 bits of
  row id, so row 1 of machine A and row 1 of machine B had the same uid. Messages stored
  then still carry it: `earlier_uid` names it, and the importer re-keys such a message
  to the anchored uid when it is the same message (see `pg_writes.rekey_messages`).

Row ids and times are masked to their widths (a row id past 2^40 is unheard of in an
openclaw-rs file). A uid is a few integer operations on cached prefixes: the importer
derives one for every row.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import uuid

from openclaw.sessions.file_identity import FileIdentity

_VARIANT = 0b10 << 62
_FILE_LOW = _VARIANT | (0b01 << 60)
_ANCHORED_LOW = _VARIANT | (0b10 << 60)
_MASK60 = (1 << 60) - 1
_MASK43 = (1 << 43) - 1
_MASK40 = (1 << 40) - 1
_OLD_ROWID_LIMIT = 1 << 62


def _hash64(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")


def _with_version(high: int) -> int:
    return (high & ~0xF000) | 0x8000


@functools.lru_cache(maxsize=256)
def file_uid_prefix(file_id: str) -> bytes:
    """The first 8 bytes of every uid of a file segment with this id."""
    return _with_version(_hash64(f"openclaw/sqlite-file/{file_id}")).to_bytes(8, "big")


def file_message_uid(prefix: bytes, rowid: int) -> bytes:
    return prefix + (_FILE_LOW | (rowid & _MASK60)).to_bytes(8, "big")


def _session_bits(agent: str, session_key: str) -> int:
    """37 bits naming agent and session, in place (bits 83..119 of the 120-bit body)."""
    return (_hash64(f"openclaw/sqlite-session/{agent}\x00{session_key}") >> 27) << 83


def anchored_message_uid(agent: str, session_key: str, ms: int, rowid: int) -> bytes:
    return _anchored(_session_bits(agent, session_key), ms, rowid)


def _anchored(session_bits: int, ms: int, rowid: int) -> bytes:
    body = session_bits | ((ms & _MASK43) << 40) | (rowid & _MASK40)
    high60 = body >> 60
    high = ((high60 >> 12) << 16) | 0x8000 | (high60 & 0xFFF)
    return ((high << 64) | _ANCHORED_LOW | (body & _MASK60)).to_bytes(16, "big")


@functools.lru_cache(maxsize=64)
def _old_prefix(agent: str) -> bytes:
    return _with_version(_hash64(f"openclaw/sqlite/{agent}")).to_bytes(8, "big")


def old_message_uid(agent: str, rowid: int) -> bytes:
    """The uid an older openclaw gave a row: the agent and the row id alone."""
    return _old_prefix(agent) + (_VARIANT | rowid).to_bytes(8, "big")


def uid_text(uid: bytes) -> str:
    return str(uuid.UUID(bytes=uid))


class MessageUids:
    """The uids of one file's messages, read as `agent`'s (older uids named the agent)."""

    __slots__ = (
        "_firsts",
        "_latest_first",
        "_latest_prefix",
        "_prefixes",
        "_session_bits",
        "agent",
        "legacy_rowid_max",
    )

    def __init__(self, identity: FileIdentity, agent: str) -> None:
        self.agent = agent
        self.legacy_rowid_max = identity.legacy_rowid_max
        self._firsts = [s.first_rowid for s in identity.segments]
        self._prefixes = [file_uid_prefix(s.file_id) for s in identity.segments]
        self._latest_first = self._firsts[-1] if self._firsts else identity.legacy_rowid_max + 1
        self._latest_prefix = self._prefixes[-1] if self._prefixes else b""
        self._session_bits: dict[str, int] = {}  # a file has a bounded number of sessions

    def uid(self, rowid: int, session_key: str, ms: int) -> bytes:
        """The uid of row `rowid`, a message of `session_key` (as stored in Postgres) at `ms`."""
        if rowid >= self._latest_first:  # the usual case: the newest segment
            return file_message_uid(self._latest_prefix, rowid)
        if rowid <= self.legacy_rowid_max:
            bits = self._session_bits.get(session_key)
            if bits is None:
                bits = self._session_bits[session_key] = _session_bits(self.agent, session_key)
            return _anchored(bits, ms, rowid)
        return file_message_uid(self._prefixes[bisect.bisect_right(self._firsts, rowid) - 1], rowid)

    def is_legacy(self, rowid: int) -> bool:
        return rowid <= self.legacy_rowid_max

    def earlier_uid(self, rowid: int) -> bytes | None:
        """The uid an older openclaw may have stored a legacy row under; None for a later row."""
        if rowid > self.legacy_rowid_max or not 0 <= rowid < _OLD_ROWID_LIMIT:
            return None
        return old_message_uid(self.agent, rowid)
