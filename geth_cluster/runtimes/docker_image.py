"""The Geth image, built locally because no registry can be reached: `docker import` of a root
holding the bootstrap's geth binary, the shared libraries `ldd` lists for it, and a /tmp.

The tag names geth's version and a hash of the binary (`ethgw/geth:v1.13.15-<12 hex>`), so a
rebuilt binary gets a new image and an unchanged one is never imported twice. The binary is
stripped of its symbol table first (when `strip` is there): the vfs storage driver copies the
whole image for every container, so every megabyte counts once per node.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from docker import DockerClient
from docker.errors import DockerException, ImageNotFound

from geth_cluster.errors import ImageBuildError, ToolMissingError

log = logging.getLogger("ethgw.docker")

REPOSITORY = "ethgw/geth"
GETH_IN_IMAGE = "/usr/local/bin/geth"
# What `docker run` gets: geth as entrypoint, so the container's command is geth's arguments.
IMAGE_CHANGES = [f'ENTRYPOINT ["{GETH_IN_IMAGE}"]', "ENV HOME=/tmp", "WORKDIR /tmp"]
PASSWD = "root:x:0:0:root:/tmp:/sbin/nologin\n"
GROUP = "root:x:0:\n"


def image_tag(geth_binary: Path) -> str:
    """`ethgw/geth:v<version>-<hash of the binary>`."""
    return f"{REPOSITORY}:v{_geth_version(geth_binary)}-{_file_hash(geth_binary)[:12]}"


def ensure_geth_image(client: DockerClient, geth_binary: Path) -> str:
    """The image's tag; imports it first when the engine does not have it (blocking)."""
    if not geth_binary.is_file():
        raise ToolMissingError(f"geth not found at {geth_binary}: run `make bootstrap` to build it")
    tag = image_tag(geth_binary)
    try:
        client.images.get(tag)
        return tag
    except ImageNotFound:
        pass
    repository, version = tag.split(":")
    with tempfile.TemporaryDirectory(prefix="ethgw-image-") as work:
        tarball = Path(work) / "root.tar"
        _write_root(geth_binary, Path(work), tarball)
        try:
            client.api.import_image_from_file(
                str(tarball), repository=repository, tag=version, changes=IMAGE_CHANGES
            )
            size = client.images.get(tag).attrs.get("Size", 0)
        except DockerException as error:
            raise ImageBuildError(f"docker import of {tag} failed: {error}") from None
    log.info("image built tag=%s size_mb=%.1f", tag, size / 1024 / 1024)
    return tag


def _write_root(geth_binary: Path, work: Path, tarball: Path) -> None:
    """The root file system as a tarball: geth, its libraries and loader, /tmp, /etc."""
    geth = _stripped_copy(geth_binary, work / "geth")
    with tarfile.open(tarball, "w") as tar:
        _add_dir(tar, "tmp", mode=0o1777)
        _add_dir(tar, "etc", mode=0o755)
        _add_text(tar, "etc/passwd", PASSWD)
        _add_text(tar, "etc/group", GROUP)
        tar.add(geth, arcname=GETH_IN_IMAGE.lstrip("/"))
        for library in shared_libraries(geth_binary):
            # The real file's content under the path the loader looks for (links resolved).
            tar.add(library.resolve(), arcname=str(library).lstrip("/"))


def shared_libraries(binary: Path) -> list[Path]:
    """The absolute paths `ldd` lists for the binary (libraries and the loader); none when
    the binary is static."""
    result = subprocess.run(
        ["ldd", str(binary)], capture_output=True, text=True, check=False, timeout=30
    )
    if result.returncode != 0:
        if "not a dynamic executable" in result.stdout + result.stderr:
            return []
        raise ImageBuildError(f"ldd {binary} failed: {result.stderr.strip()}")
    paths = re.findall(r"(/\S+)\s+\(0x", result.stdout)
    return [Path(p) for p in paths]


def _stripped_copy(source: Path, target: Path) -> Path:
    strip = shutil.which("strip")
    if strip is None:
        shutil.copy2(source, target)
    else:
        subprocess.run([strip, "-o", str(target), str(source)], check=True, timeout=120)
    target.chmod(0o755)
    return target


def _add_dir(tar: tarfile.TarFile, name: str, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, mode
    tar.addfile(info)


def _add_text(tar: tarfile.TarFile, name: str, text: str) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def _geth_version(geth_binary: Path) -> str:
    result = subprocess.run(
        [str(geth_binary), "version"], capture_output=True, text=True, check=False, timeout=30
    )
    match = re.search(r"^Version: (\d+\.\d+\.\d+)", result.stdout, re.MULTILINE)
    if match is None:
        raise ImageBuildError(f"cannot read the version of {geth_binary}: {result.stdout!r}")
    return match.group(1)


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


__all__ = ["ensure_geth_image", "image_tag", "shared_libraries"]
