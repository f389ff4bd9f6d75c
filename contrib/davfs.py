"""Mount a WebDAV server (``sessionfs serve``, ``sessionfs mount --webdav``) with davfs2
without touching /etc/davfs2 or ~/.davfs2: the configuration, secrets and cache live in a
private temporary directory (``mount.davfs -o conf=...``). Used by the tests and the
WebDAV benchmark; needs root (mount.davfs) and the Debian package ``davfs2``."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path


class Davfs:
    """A davfs2 mount of ``url`` at ``path``; configuration, secrets and cache in a directory of
    its own in /tmp (mount.davfs drops to its own user, which cannot enter pytest's 0700 tmp).

    ``buf_size 64``: with a smaller buffer, davfs2 1.6 fails every readdir with EINVAL on
    Linux 6.16 and later. Directory and file refresh are 1 s so a change made beside the
    mount shows soon."""

    def __init__(self, url: str, path: Path, user: str, password: str):
        self.url, self.path, self.user, self.password = url, Path(path), user, password
        self.work = Path(tempfile.mkdtemp(prefix="sessionfs-davfs-"))
        os.chmod(self.work, 0o755)

    def mount(self) -> "Davfs":
        self.path.mkdir(parents=True, exist_ok=True)
        cache = self.work / "cache"
        cache.mkdir(exist_ok=True)
        os.chmod(cache, 0o777)
        secrets = self.work / "secrets"
        secrets.write_text(f"{self.url} {self.user} \"{self.password}\"\n")
        os.chmod(secrets, 0o600)
        conf = self.work / "davfs2.conf"
        conf.write_text(f"secrets {secrets}\ncache_dir {cache}\nask_auth 0\ndelay_upload 0\nbuf_size 64\n"
                        "dir_refresh 1\nfile_refresh 1\nuse_locks 1\n")
        r = subprocess.run(["mount.davfs", "-o", f"conf={conf}", self.url, str(self.path)], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, f"mount.davfs {self.url} {self.path}: {r.stderr}"
        return self

    def umount(self) -> None:
        """Unmount, uploading what davfs2 still holds."""
        subprocess.run(["umount", str(self.path)], check=True, capture_output=True, timeout=300)

    def cleanup(self) -> None:
        if os.path.ismount(self.path):
            subprocess.run(["umount", str(self.path)], capture_output=True, timeout=300)
            if os.path.ismount(self.path):
                subprocess.run(["umount", "-l", str(self.path)], capture_output=True, timeout=60)
        shutil.rmtree(self.work, ignore_errors=True)
