"""The durable object store for bulk media (chunks), through fsspec.

A local folder by default (`<corpus>/store`); `s3://bucket/prefix` and `gs://bucket/prefix` with the
`s3`/`gcs` extras. Credentials come from the environment (AWS_*, GOOGLE_APPLICATION_CREDENTIALS),
never from files streamlearn writes. Objects are written private; a link to share is a signed URL
with an expiry, returned to the caller and never stored.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from streamlearn.core.errors import StreamlearnError
from streamlearn.core.files import sha256_file

_EXTRA = {"s3": "s3", "gs": "gcs", "gcs": "gcs"}


def _filesystem(protocol: str, endpoint_url: str | None):
    import fsspec

    kwargs = {}
    if protocol == "s3":
        endpoint = endpoint_url or os.environ.get("STREAMLEARN_S3_ENDPOINT")
        if endpoint:
            kwargs["client_kwargs"] = {"endpoint_url": endpoint}
        kwargs["skip_instance_cache"] = True
    try:
        return fsspec.filesystem(protocol, **kwargs)
    except (ImportError, ValueError) as exc:
        extra = _EXTRA.get(protocol, protocol)
        raise StreamlearnError(f"no filesystem for {protocol}:// ({exc}); install the extra: "
                               f"pip install 'streamlearn[{extra}]'") from None


class Store:
    def __init__(self, uri: str, corpus_root: Path, endpoint_url: str | None = None):
        if not uri:  # the default store lives in the corpus; its URIs stay relative so the corpus can move
            self.protocol, self.base = "file", str((Path(corpus_root) / "store").resolve())
            self.fs = _filesystem("file", None)
            self.display = "store"
            return
        if "://" in uri and not uri.startswith("file://"):
            self.protocol, rest = uri.split("://", 1)
            self.protocol = "gcs" if self.protocol == "gs" else self.protocol
            self.base = rest.rstrip("/")
            self.fs = _filesystem(self.protocol, endpoint_url)
            self.display = f"{'gs' if self.protocol == 'gcs' else self.protocol}://{self.base}"
        else:
            self.protocol = "file"
            path = Path(uri[len("file://"):] if uri.startswith("file://") else uri)
            self.base = str(path.resolve())
            self.fs = _filesystem("file", None)
            self.display = self.base

    @property
    def is_local(self) -> bool:
        return self.protocol == "file"

    @staticmethod
    def confined(rel: str) -> bool:
        """A key that stays inside the store: relative, no `..`, no empty or backslash components."""
        parts = rel.split("/")
        return bool(rel) and not rel.startswith("/") and "\\" not in rel and all(p not in ("", ".", "..") for p in parts)

    def _path(self, rel: str) -> str:
        if not self.confined(rel):
            raise StreamlearnError(f"store {self.display}: key {rel!r} would leave the store; fix the row that names it")
        return f"{self.base}/{rel}"

    def uri(self, rel: str) -> str:
        return f"{self.display}/{rel}"

    def rel_of(self, uri: str) -> str | None:
        """The key of a URI inside this store, or None if it points elsewhere."""
        prefix = self.display + "/"
        key = uri[len(prefix):] if uri.startswith(prefix) else None
        return key if key is not None and self.confined(key) else None  # `store/../../etc/x` is not in it

    def _fail(self, action: str, rel: str, exc: BaseException) -> StreamlearnError:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        return StreamlearnError(f"store {self.display}: cannot {action} {rel} ({type(exc).__name__}: {reason}); "
                                "check storage.uri, the credentials in the environment and write permission")

    def put(self, local: Path, rel: str, sha256: str | None = None, move: bool = False) -> str:
        """Upload, then read the object back to check its size and sha256. Returns the URI.

        With `move` and a local store on the same filesystem the file is renamed into place (the
        staged copy is going away anyway): no second copy to write, nothing to read back.
        """
        local = Path(local)
        if move and self.is_local:
            dest = Path(self._path(rel))
            dest.parent.mkdir(parents=True, exist_ok=True)
            size = local.stat().st_size
            try:
                os.replace(local, dest)
            except OSError:  # another filesystem: copy and verify below
                pass
            else:
                if dest.stat().st_size != size:
                    raise StreamlearnError(f"store {self.display}: {rel} has the wrong size after the move")
                return self.uri(rel)
        try:
            if self.is_local:  # object stores have no folders (and s3fs's makedirs would create a bucket)
                self.fs.makedirs(self._path(rel).rsplit("/", 1)[0], exist_ok=True)
            self.fs.put_file(str(local), self._path(rel))
        except Exception as exc:  # noqa: BLE001 - any backend error becomes one clear line
            raise self._fail("write", rel, exc) from None
        expected = sha256 or sha256_file(local)
        size = local.stat().st_size
        got_size, got_hash = self.stat(rel)
        if got_size != size or got_hash != expected:
            raise StreamlearnError(f"store {self.display}: {rel} reads back as {got_size} bytes / sha256 "
                                   f"{(got_hash or '')[:12]}, expected {size} / {expected[:12]}; upload again")
        return self.uri(rel)

    def stat(self, rel: str, with_hash: bool = True) -> tuple[int | None, str | None]:
        """(size, sha256) of an object; (None, None) if it does not exist."""
        try:
            if not self.fs.exists(self._path(rel)):
                return None, None
            size = int(self.fs.info(self._path(rel))["size"])
            if not with_hash:
                return size, None
            h = hashlib.sha256()
            with self.fs.open(self._path(rel), "rb", block_size=1 << 22) as fh:
                while block := fh.read(1 << 22):
                    h.update(block)
            return size, h.hexdigest()
        except Exception as exc:  # noqa: BLE001
            raise self._fail("read", rel, exc) from None

    def exists(self, rel: str) -> bool:
        try:
            return bool(self.fs.exists(self._path(rel)))
        except Exception as exc:  # noqa: BLE001
            raise self._fail("read", rel, exc) from None

    def get(self, rel: str, local: Path) -> Path:
        try:
            self.fs.get_file(self._path(rel), str(local))
        except Exception as exc:  # noqa: BLE001
            raise self._fail("read", rel, exc) from None
        return Path(local)

    def local_path(self, rel: str) -> Path | None:
        return Path(self._path(rel)) if self.is_local else None

    def list(self, prefix: str = "") -> list[str]:
        try:
            root = self._path(prefix).rstrip("/")
            if not self.fs.exists(root):
                return []
            return sorted(p[len(self.base) + 1:] if p.startswith(self.base) else p
                          for p in self.fs.find(root))
        except Exception as exc:  # noqa: BLE001
            raise self._fail("list", prefix or "/", exc) from None

    def signed_url(self, rel: str, expires_s: int = 3600) -> str:
        """A time-limited link to one object (s3/gcs). Never write it to a manifest or a log."""
        if self.is_local:
            raise StreamlearnError("a local store has no signed URLs; share the file another way")
        return self.fs.sign(self._path(rel), expiration=expires_s)


def store_for(corpus, uri: str | None = None) -> Store:
    """The corpus's chunk store (its `[storage]` section), or the one at `uri`."""
    s = corpus.config.storage
    return Store(uri if uri is not None else s.uri, corpus.root, endpoint_url=s.endpoint_url or None)
