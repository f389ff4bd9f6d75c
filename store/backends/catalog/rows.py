"""Rows the catalog interface returns, shared by its domains and implementations."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class BlockRow:
    id: int
    pack_id: int
    offset: int
    length: int
    raw_length: int
    codec: int
    dict_id: int
