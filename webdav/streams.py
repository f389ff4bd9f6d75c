"""File objects over a stored file: what WsgiDAV reads a GET from (seekable, for Range
requests) and writes a PUT's body into."""

from __future__ import annotations

import io


class StoreReader(io.RawIOBase):
    """Reads file ``ino`` as it is now (overlays included), from any offset."""

    def __init__(self, store, ino: int, size: int):
        self.store, self.ino, self.size, self.pos = store, ino, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self.size - self.pos
        data = self.store.read(self.ino, self.pos, size) if size > 0 else b""
        self.pos += len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


class StoreWriter(io.RawIOBase):
    """Appends a request body to file ``ino`` through the store's staging overlay (no
    memory copy of the whole body); ``close`` does not seal: the resource does, once the
    whole body has arrived."""

    def __init__(self, store, ino: int):
        self.store, self.ino, self.pos = store, ino, 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        n = self.store.write(self.ino, self.pos, bytes(data))
        self.pos += n
        return n
