"""``adbench data fetch``: a public dataset into the layout its loader reads, in one command.

The archive is downloaded into ``<root>/.downloads`` (resumed with an HTTP range request after an
interruption), its SHA-256 checked against the value recorded here (a mismatch removes it, nothing is
extracted), then unpacked member by member (no absolute path, no ``..``, no link: an archive cannot write
outside ``root``) into a temporary folder that is moved into place. The licence is printed first. Datasets
behind a form or a login are not downloaded: the error says where to get them and how to lay them out.
Links and checksums are anomalib's current ones (MVTec moves its share links; ``--url`` takes a mirror).
"""

from __future__ import annotations

import errno
import http.client
import os
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from adbench.atomic import atomic_write_text, make_dir
from adbench.errors import DataError
from adbench.hashing import file_sha256

CC_BY_NC_SA = "CC BY-NC-SA 4.0 (https://creativecommons.org/licenses/by-nc-sa/4.0/): non-commercial use, cite the paper"
CHUNK = 1 << 20
DONE = ".adbench-fetched"  # written last into the dataset folder: the fetch finished


@dataclass(frozen=True)
class Source:
    """Where a dataset comes from: a direct ``url`` with its ``sha256``, or ``manual`` steps (a form, a
    login); ``inner``: the folder inside the archive that holds the layout (moved up into ``root``);
    ``renames``: (glob, new name) of folders renamed into the layout the loader reads."""

    name: str
    licence: str
    url: str = ""
    sha256: str = ""
    inner: str = ""
    manual: str = ""
    renames: tuple[tuple[str, str], ...] = ()

    @property
    def archive(self) -> str:
        return PurePosixPath(self.url).name


SOURCES = {s.name: s for s in (
    Source("mvtec", CC_BY_NC_SA, "https://www.mydrive.ch/shares/150996/b52ecdcbf521176e9db9c731f2304b27/download/"
           "420938113-1629960298/mvtec_anomaly_detection.tar.xz",
           "cf4313b13603bec67abb49ca959488f7eedce2a9f7795ec54446c649ac98cd3d"),
    Source("visa", CC_BY_NC_SA, "https://amazon-visual-anomaly.s3.us-west-2.amazonaws.com/VisA_20220922.tar",
           "2eb8690c803ab37de0324772964100169ec8ba1fa3f7e94291c9ca673f40f362"),  # split_csv/1cls.csv inside
    Source("btad", CC_BY_NC_SA, "https://avires.dimi.uniud.it/papers/btad/btad.zip",
           "461c9387e515bfed41ecaae07c50cf6b10def647b36c9e31d239ab2736b10d2a", inner="BTech_Dataset_transformed",
           renames=(("*/train/ok", "good"), ("*/test/ok", "good"))),  # BTAD's ok/ko into the MVTec layout
    Source("mvtec_ad2", CC_BY_NC_SA, "https://www.mydrive.ch/shares/150997/701c90d3aea6588f404936e32a674602/download/"
           "466712769-1743429042/mvtec_ad_2.tar.gz",
           "c0ded99ef32bfc8e352d52beb44515e5b292b8598cb963aadfa91ca0763505e4"),
    Source("mpdd", CC_BY_NC_SA, manual=(
        "MPDD is shared as a OneDrive folder without a direct link: download every file from "
        "https://vutbr-my.sharepoint.com/:f:/g/personal/xjezek16_vutbr_cz/"
        "EhHS_ufVigxDo3MC6Lweau0BVMuoCmhMZj6ddamiQ7-FnA "
        "and extract them so that ROOT/bracket_black/train/good, ROOT/bracket_black/test/<defect> and "
        "ROOT/bracket_black/ground_truth/<defect> exist (MVTec layout); then --dataset mpdd --data-root ROOT.")),
    Source("mvtec_loco", CC_BY_NC_SA, "https://www.mydrive.ch/shares/48237/1b9106ccdfbb09a0c414bd49fe44a14a/download/"
           "430647091-1646842701/mvtec_loco_anomaly_detection.tar.xz",
           "9e7c84dba550fd2e59d8e9e231c929c45ba737b6b6a6d3814100f54d63aae687"),
    Source("real_iad", "Real-IAD terms of use (research only; access is granted on request)", manual=(
        "Real-IAD is granted on request (https://realiad4ad.github.io/Real-IAD/, then its Hugging Face dataset "
        "page): unpack realiad_<resolution> and realiad_jsons into ROOT so that ROOT/realiad_<resolution>/<object>/ "
        "and ROOT/realiad_jsons/<object>.json (or ROOT/realiad_jsons/realiad_jsons/<object>.json, as the zip "
        "unpacks) exist; then --dataset real_iad.")),
)}


def source(name: str) -> Source:
    if name not in SOURCES:
        raise DataError(f"unknown dataset {name!r} to fetch; known: {', '.join(SOURCES)}")
    return SOURCES[name]


def fetch(name: str, root: Path, url: str | None = None, say: Callable[[str], None] = print,
          progress: Callable[[int, int], None] | None = None) -> Path:
    """Download, verify and unpack dataset ``name`` into ``root`` (``url``: a mirror of the same archive);
    returns ``root``. A finished fetch is not repeated; an interrupted download resumes."""
    src = source(name)
    if src.manual:
        raise DataError(f"{name} cannot be downloaded automatically. {src.manual.replace('ROOT', str(root))}")
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DataError(f"--root {root} is a file: give the folder {name} is to be unpacked into (it is made if "
                        "missing).")
    if url is not None and urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise DataError(f"--url {url!r} is not an http(s) address of a mirror of {src.archive}.")
    if (root / DONE).is_file():
        fetched = (root / DONE).read_text().split()[:1]
        if fetched and fetched[0] != name:
            raise DataError(f"{root} holds {fetched[0]} (fetched, {DONE}): give {name} a folder of its own, e.g. "
                            f"{root.parent / name}.")
        say(f"{name} is already in {root} ({DONE} is there); nothing to do")
        return root
    say(f"{name}: licence {src.licence}. Downloading it means accepting its terms.")
    downloads = root / ".downloads"
    if downloads.is_symlink():
        raise DataError(f"{downloads} is a symbolic link (to {os.readlink(downloads)}): adbench downloads and unpacks "
                        "only into a folder of its own there. Remove the link and run again.")
    archive = make_dir(downloads) / src.archive
    if not archive.is_file():
        download(url or src.url, archive, progress)
    got = file_sha256(archive)
    if got != src.sha256:
        size = archive.stat().st_size
        archive.unlink()
        raise DataError(f"{archive.name}: SHA-256 {got} is not the published {src.sha256} ({size} bytes "
                        "arrived: a download cut short without notice, or another file); the file was "
                        "removed and nothing was extracted. Run again to download it afresh (or check the --url "
                        "mirror).")
    say(f"{archive.name}: SHA-256 verified; extracting into {root}")
    unpack(archive, root, src.inner, src.renames)
    atomic_write_text(root / DONE, f"{name} {src.sha256}\n")
    return root


def download(url: str, archive: Path, progress: Callable[[int, int], None] | None = None) -> None:
    """``url`` into ``archive``, through ``<archive>.part``: an interrupted download keeps what it received
    and the next call asks only for the rest (HTTP Range); a server that ignores the range starts over."""
    part = archive.with_name(archive.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - http(s) URLs of SOURCES or --url
            resumed = have and response.status == 206
            total = int(response.headers.get("Content-Length") or 0) + (have if resumed else 0)
            with open(part, "ab" if resumed else "wb") as out:
                done = have if resumed else 0
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the range starts at the end: the part is complete
            part.replace(archive)
            return
        raise DataError(f"downloading {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:  # HTTPException: a chunk cut short
        kept = part.stat().st_size if part.is_file() else 0
        reason = getattr(exc, "reason", exc)
        raise DataError(f"downloading {url} stopped after {kept} bytes ({reason}); what arrived is kept in {part}: "
                        "run the same command again to resume") from None
    if total and part.stat().st_size < total:
        raise DataError(f"downloading {url} stopped after {part.stat().st_size} of {total} bytes; what arrived is "
                        f"kept in {part}: run the same command again to resume")
    part.replace(archive)


def safe_member(name: str, archive: Path) -> PurePosixPath:
    """An archive member's path, refused when it could land outside the folder it is unpacked into."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise DataError(f"{archive.name} holds {name!r}, a path outside the folder it unpacks into: refused, "
                        "nothing moved into place")
    return path


MAX_UNPACKED_RATIO = 20  # an archive unpacks to at most this many times its size, plus UNPACK_SLACK: else a bomb
UNPACK_SLACK = 16 << 20


def unpack(archive: Path, root: Path, inner: str = "", renames: tuple[tuple[str, str], ...] = ()) -> None:
    """Regular files and folders of ``archive`` (a zip by its first bytes, else a tar, tar.gz or tar.xz) into
    ``root``: unpacked into a temporary folder beside it (links and devices refused, at most
    ``MAX_UNPACKED_RATIO`` times the archive's size), folders renamed (``renames``), then, once no item is in the
    way, its content (``inner``'s, when given) moved into place. A failure (a full disk too) leaves ``root`` as
    it was."""
    staging = make_dir(root / ".downloads" / f"{archive.name}.unpacking")
    shutil.rmtree(staging)
    staging.mkdir()
    try:
        extract(archive, staging)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DataError(f"Disk full while unpacking {archive.name} ({exc.strerror}): nothing was moved into "
                            f"{root}; free space there and run the same command again.") from None
        raise
    top = staging / inner if inner else staging
    if not top.is_dir():
        raise DataError(f"{archive.name} has no folder {inner!r}: not the published archive")
    for pattern, new in renames:
        for folder in sorted(top.glob(pattern)):
            folder.rename(folder.with_name(new))
    in_the_way = [root / item.name for item in sorted(top.iterdir()) if (root / item.name).exists()]
    if in_the_way:
        more = f" (and {len(in_the_way) - 1} more)" if len(in_the_way) > 1 else ""
        raise DataError(f"{in_the_way[0]} exists already{more}: nothing was moved into place; move them away (or "
                        "fetch into an empty --root)")
    for item in sorted(top.iterdir()):
        os.replace(item, root / item.name)
    shutil.rmtree(staging)


def extract(archive: Path, staging: Path) -> None:
    """``archive``'s regular files and folders into ``staging`` (``unpack``'s checks)."""
    with open(archive, "rb") as fh:
        is_zip = fh.read(4) in (b"PK\x03\x04", b"PK\x05\x06")  # a zip starts so; a tar holding a zip does not
    budget = MAX_UNPACKED_RATIO * archive.stat().st_size + UNPACK_SLACK
    if is_zip:
        with zipfile.ZipFile(archive) as zf:
            check_size(sum(info.file_size for info in zf.infolist()), budget, archive)
            for info in zf.infolist():
                target = staging / safe_member(info.filename, archive)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
        return
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        check_size(sum(m.size for m in members if m.isfile()), budget, archive)
        for member in members:
            target = staging / safe_member(member.name, archive)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                with tf.extractfile(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
            else:
                raise DataError(f"{archive.name} holds {member.name!r}, a link or device: refused, nothing "
                                "moved into place")


def check_size(total: int, budget: int, archive: Path) -> None:
    if total > budget:
        raise DataError(f"{archive.name} would unpack to {total} bytes, more than {MAX_UNPACKED_RATIO} times its "
                        f"{archive.stat().st_size}: not the published archive (an archive bomb?); nothing unpacked")
