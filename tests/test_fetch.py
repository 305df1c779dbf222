"""`adbench data fetch` against a local HTTP server (127.0.0.1) serving small look-alike archives: a cut
download resumed with a range request, a wrong checksum refused with nothing extracted, unsafe archives
refused, datasets behind a form explained."""

import hashlib
import http.server
import io
import tarfile
import threading
import zipfile

import pytest
from typer.testing import CliRunner

from adbench.cli import app
from adbench.data import fetch as fetching
from adbench.data.fetch import Source
from adbench.data.mvtec import MVTecLayout
from adbench.errors import DataError


class Server:
    """Serves ``files`` (name -> bytes) with HTTP range requests; ``cut_after`` bytes of the first response
    are sent before the connection drops (an interrupted download). Records each request's Range header."""

    def __init__(self, files, cut_after=None, chunked=False):
        self.files, self.cut_after, self.ranges, self.chunked = files, cut_after, [], chunked
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server interface
                body = owner.files[self.path.lstrip("/")]
                wanted = self.headers.get("Range")
                owner.ranges.append(wanted)
                start = int(wanted.removeprefix("bytes=").rstrip("-")) if wanted else 0
                self.send_response(206 if wanted else 200)
                payload = body[start:]
                if owner.chunked:  # no length announced: one chunk, dropped halfway
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.write(f"{len(payload):x}\r\n".encode() + payload[:len(payload) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if owner.cut_after is not None:
                    payload, owner.cut_after = payload[:owner.cut_after], None
                    self.wfile.write(payload)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, name):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def png_bytes(value=0):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (8, 8), value).save(buffer, format="PNG")
    return buffer.getvalue()


def btad_like_zip() -> bytes:
    """A BTAD look-alike: BTech_Dataset_transformed/01 with ok/ko folders, 300 kB of noise for a long body."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        top = "BTech_Dataset_transformed/01"
        for i in range(3):
            zf.writestr(f"{top}/train/ok/{i:04d}.png", png_bytes(10 * i))
        zf.writestr(f"{top}/test/ok/0000.png", png_bytes(5))
        zf.writestr(f"{top}/test/ko/0000.png", png_bytes(200))
        zf.writestr(f"{top}/ground_truth/ko/0000.png", png_bytes(255))
        zf.writestr(f"{top}/padding.bin", bytes(range(256)) * 1200)
    return buffer.getvalue()


@pytest.fixture
def btad(monkeypatch):
    body = btad_like_zip()
    published = fetching.SOURCES["btad"]
    look_alike = Source("btad", published.licence, "http://unused/btad.zip", hashlib.sha256(body).hexdigest(),
                        published.inner, renames=published.renames)
    monkeypatch.setitem(fetching.SOURCES, "btad", look_alike)
    return body


def test_a_cut_download_resumes_with_a_range_request_and_lands_in_the_loaders_layout(btad, tmp_path):
    server = Server({"btad.zip": btad}, cut_after=100_000)
    root = tmp_path / "btad"
    try:
        first = CliRunner().invoke(app, ["data", "fetch", "btad", "--root", str(root), "--url",
                                         server.url("btad.zip")])
        assert first.exit_code == 2 and "stopped after 100000 of" in first.output and "run the same command again" \
            in first.output
        assert (root / ".downloads" / "btad.zip.part").stat().st_size == 100_000 and not (root / "01").exists()
        second = CliRunner().invoke(app, ["data", "fetch", "btad", "--root", str(root), "--url",
                                          server.url("btad.zip")])
        assert second.exit_code == 0, second.output
        assert server.ranges == [None, "bytes=100000-"]  # only the rest was asked for
        assert "licence CC BY-NC-SA 4.0" in first.output and "SHA-256 verified" in second.output
    finally:
        server.close()
    data = MVTecLayout(root, name="btad")  # BTAD's ok folders renamed: the MVTec-layout loader reads it
    assert data.categories() == ["01"] and len(data.train("01")) == 3
    test = data.test("01")
    assert sorted(s.label for s in test) == [0, 1] and [s.mask_path.name for s in test if s.label] == ["0000.png"]
    again = CliRunner().invoke(app, ["data", "fetch", "btad", "--root", str(root)])
    assert again.exit_code == 0 and "nothing to do" in again.output  # finished: not fetched twice


def test_a_wrong_checksum_is_refused_and_nothing_is_extracted(btad, tmp_path, monkeypatch):
    tampered = btad[:-1] + bytes([btad[-1] ^ 1])
    server = Server({"btad.zip": tampered})
    root = tmp_path / "btad"
    try:
        result = CliRunner().invoke(app, ["data", "fetch", "btad", "--root", str(root), "--url",
                                          server.url("btad.zip")])
    finally:
        server.close()
    assert result.exit_code == 2 and f"SHA-256 {hashlib.sha256(tampered).hexdigest()} is not the published" in \
        result.output and "nothing was extracted" in result.output
    assert sorted(p.name for p in root.iterdir()) == [".downloads"] and not any((root / ".downloads").iterdir())


def test_an_archive_that_would_write_outside_its_folder_or_through_a_link_is_refused(tmp_path):
    for name, build in (("escape.zip", lambda zf: zf.writestr("../outside.txt", "x")),
                        ("later.zip", lambda zf: zf.writestr("MVTec/../../outside.txt", "x")),  # after a harmless part
                        ("deep.zip", lambda zf: zf.writestr("a/b/../../../outside.txt", "x")),
                        ("absolute.zip", lambda zf: zf.writestr("/etc/x.txt", "x"))):
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as zf:
            build(zf)
        with pytest.raises(DataError, match="a path outside the folder it unpacks into"):
            fetching.unpack(path, tmp_path / "root")
    linked = tmp_path / "link.tar"
    with tarfile.open(linked, "w") as tf:
        info = tarfile.TarInfo("evil")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(DataError, match="a link or device: refused"):
        fetching.unpack(linked, tmp_path / "root2")
    climbing = tmp_path / "climb.tar"
    with tarfile.open(climbing, "w") as tf:
        info = tarfile.TarInfo("breakfast_box/../../outside.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(DataError, match="'breakfast_box/../../outside.txt', a path outside the folder"):
        fetching.unpack(climbing, tmp_path / "root3")
    assert not (tmp_path / "outside.txt").exists()


def test_mvtec_loco_is_fetched_from_its_direct_link_into_the_layout_its_loader_reads(tmp_path, monkeypatch):
    """LOCO's archive holds the category folders at its top (as MVTec AD's): a look-alike tar.xz, served
    locally, lands where ``mvtec_loco`` reads it."""
    from adbench.registry import DATASETS
    from tests.test_data import loco_like

    loco_like(tmp_path / "made")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as tf:
        tf.add(tmp_path / "made" / "box", arcname="box")
    body = buffer.getvalue()
    published = fetching.SOURCES["mvtec_loco"]
    assert published.url.endswith("/mvtec_loco_anomaly_detection.tar.xz") and not published.manual
    monkeypatch.setitem(fetching.SOURCES, "mvtec_loco", Source("mvtec_loco", published.licence, published.url,
                                                               hashlib.sha256(body).hexdigest()))
    server = Server({"mvtec_loco_anomaly_detection.tar.xz": body})
    try:
        result = CliRunner().invoke(app, ["data", "fetch", "mvtec_loco", "--root", str(tmp_path / "loco"), "--url",
                                          server.url("mvtec_loco_anomaly_detection.tar.xz")])
    finally:
        server.close()
    assert result.exit_code == 0, result.output
    data = DATASETS.create("mvtec_loco", root=str(tmp_path / "loco"))
    assert data.categories() == ["box"] and [s.defect for s in data.test("box")] == [
        "good", "logical_anomalies", "structural_anomalies"]


def test_datasets_behind_a_form_say_where_to_get_them_and_unknown_names_list_the_known():
    for name, where in (("mpdd", "vutbr-my.sharepoint.com"), ("real_iad", "realiad4ad.github.io")):
        result = CliRunner().invoke(app, ["data", "fetch", name, "--root", "/data/x"])
        assert result.exit_code == 2 and "cannot be downloaded automatically" in result.output, name
        assert where in result.output and "/data/x/" in result.output
    unknown = CliRunner().invoke(app, ["data", "fetch", "mnist", "--root", "/data/x"])
    assert unknown.exit_code == 2 and "unknown dataset 'mnist' to fetch; known: mvtec, visa, btad" in unknown.output
    assert all(len(s.sha256) == 64 for s in fetching.SOURCES.values() if s.url)  # every download is verified


def test_a_root_that_is_a_file_a_url_that_is_no_url_and_another_datasets_root_are_one_line(btad, tmp_path):
    file_root = tmp_path / "a-file"
    file_root.write_text("x")
    other = tmp_path / "mvtec"
    other.mkdir()
    (other / fetching.DONE).write_text("mvtec 0123\n")  # a finished fetch of another dataset
    for args, message in ((["--root", str(file_root)], f"--root {file_root} is a file: give the folder btad"),
                          (["--root", str(tmp_path / "b"), "--url", "not a url"],
                           "--url 'not a url' is not an http(s) address of a mirror of btad.zip"),
                          (["--root", str(other)], f"{other} holds mvtec (fetched, .adbench-fetched): give btad a "
                                                   "folder of its own")):
        result = CliRunner().invoke(app, ["data", "fetch", "btad", *args])
        output = " ".join(result.output.split())
        assert result.exit_code == 2 and message in output and "Traceback" not in output, output
    assert file_root.read_text() == "x" and sorted(p.name for p in other.iterdir()) == [fetching.DONE]


def tar_of(path, members):
    """A tar at ``path`` of ``members`` (name -> bytes)."""
    with tarfile.open(path, "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_a_tar_is_unpacked_as_a_tar_whole_or_not_at_all_and_within_a_size_bound(tmp_path, monkeypatch):
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("decoy/only.txt", "from the zip")
    archive = tar_of(tmp_path / "a.tar", {"cat/train/good/0.png": b"png", "z/last.zip": inner.getvalue()})
    assert zipfile.is_zipfile(archive)  # a zip's end record found at the tar's end: the old test took it for a zip
    fetching.unpack(archive, tmp_path / "root")
    assert (tmp_path / "root" / "cat" / "train" / "good" / "0.png").read_bytes() == b"png"
    assert (tmp_path / "root" / "z" / "last.zip").is_file() and not (tmp_path / "root" / "decoy").exists()
    second = tar_of(tmp_path / "b.tar", {"a_new/x.png": b"x", "cat/y.png": b"y"})  # cat is there already
    with pytest.raises(DataError, match=r"root/cat exists already: nothing was moved into place"):
        fetching.unpack(second, tmp_path / "root")
    assert not (tmp_path / "root" / "a_new").exists()  # refused before any item moved in
    bomb = tar_of(tmp_path / "bomb.tar", {"big.bin": bytes(1 << 20)})  # 1 MiB of zeros, a 1 MiB tar
    monkeypatch.setattr(fetching, "UNPACK_SLACK", 0)
    fetching.unpack(bomb, tmp_path / "r2")  # within 20 x its size
    gz = tmp_path / "bomb.tar.gz"
    with tarfile.open(gz, "w:gz") as tf:
        tf.add(tmp_path / "r2" / "big.bin", "big.bin")  # the same MiB compressed to about 1 kB: 1000 x
    with pytest.raises(DataError, match=r"bomb.tar.gz would unpack to 1048576 bytes, more than 20 times its \d+"):
        fetching.unpack(gz, tmp_path / "r3")
    assert not (tmp_path / "r3" / "big.bin").exists()


def test_a_full_disk_while_unpacking_leaves_the_root_as_it_was_and_says_so(tmp_path, monkeypatch):
    import errno
    import shutil

    archive = tar_of(tmp_path / "a.tar", {"cat/0.png": b"png", "cat/1.png": b"png"})
    real = shutil.copyfileobj
    calls = []

    def filling(src, dst, length=0):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst, length)

    monkeypatch.setattr(fetching.shutil, "copyfileobj", filling)
    with pytest.raises(DataError, match="Disk full while unpacking a.tar .*: nothing was moved into"):
        fetching.unpack(archive, tmp_path / "root")
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == [".downloads"]
    assert not list((tmp_path / "root" / ".downloads").iterdir())  # the half-unpacked folder removed


def test_a_downloads_folder_linked_elsewhere_is_refused(btad, tmp_path):
    root, elsewhere = tmp_path / "btad", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    (root / ".downloads").symlink_to(elsewhere, target_is_directory=True)
    result = CliRunner().invoke(app, ["data", "fetch", "btad", "--root", str(root)])
    assert result.exit_code == 2 and ".downloads is a symbolic link" in " ".join(result.output.split())
    assert not list(elsewhere.iterdir())


def test_a_chunked_download_dropped_mid_file_is_one_line_and_resumable(btad, tmp_path):
    server = Server({"btad.zip": btad}, chunked=True)
    try:
        result = CliRunner().invoke(app, ["data", "fetch", "btad", "--root", str(tmp_path / "b"), "--url",
                                          server.url("btad.zip")])
    finally:
        server.close()
    output = " ".join(result.output.split())
    assert result.exit_code == 2 and "stopped after" in output and "run the same command again to resume" in output
    assert "Traceback" not in output and (tmp_path / "b" / ".downloads" / "btad.zip.part").is_file()
