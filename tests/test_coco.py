"""Tests for colorlib.data.coco against a fake COCO server on 127.0.0.1 (never the internet).

The server serves a tiny COCO built in ``tmp_path``: six real 8x8 JPEGs under ``train2017/``
and ``annotations/annotations_trainval2017.zip`` with a valid ``instances_train2017.json``.
Switches on :class:`FakeServer` make it ignore ``Range``, fail the next requests with 503, or
cut the next bodies in half; it logs every request with its ``Range`` header.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from colorlib.data import coco
from colorlib.data.coco import coco_reachable, download_coco_subset, subset_annotation_file
from colorlib.data.download import DownloadError, download_file

CATEGORIES = [
    {"id": 1, "name": "person", "supercategory": "person"},
    {"id": 17, "name": "cat", "supercategory": "animal"},
    {"id": 18, "name": "dog", "supercategory": "animal"},
]
DOG_IMAGES = {2, 5}
NUM_IMAGES = 6


@dataclass
class FakeServer:
    root: Path
    url: str = ""
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    ignore_range: bool = False
    fail_next: int = 0
    truncate_next: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def paths(self, prefix: str = "/") -> list[str]:
        with self.lock:
            return [path for path, _ in self.requests if path.startswith(prefix)]


def _handler(state: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_HEAD(self) -> None:
            self._serve(send_body=False)

        def do_GET(self) -> None:
            self._serve(send_body=True)

        def _serve(self, send_body: bool) -> None:
            range_header = self.headers.get("Range")
            with state.lock:
                state.requests.append((self.path, range_header))
                fail, state.fail_next = state.fail_next > 0, max(state.fail_next - 1, 0)
                cut, state.truncate_next = state.truncate_next > 0, max(state.truncate_next - 1, 0)
            file = state.root / self.path.lstrip("/")
            if fail:
                return self.send_error(503)
            if self.path == "/":
                data = b""
            elif not file.is_file():
                return self.send_error(404)
            else:
                data = file.read_bytes()
            start = 0
            if range_header and not state.ignore_range:
                start = int(range_header.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    return self.end_headers()
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if send_body:
                self.wfile.write(body[: len(body) // 2] if cut else body)

    return Handler


def _jpeg(seed: int) -> bytes:
    image = Image.new("RGB", (8, 8), ((40 * seed) % 256, (90 * seed) % 256, (150 + seed) % 256))
    image.putpixel((seed % 8, 3), (255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    return buffer.getvalue()


def _annotation(ann_id: int, image_id: int, category_id: int) -> dict:
    x, y = 1.0 + image_id % 3, 2.0
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": [[x, y, x + 4, y, x + 4, y + 4, x, y + 4]],
        "bbox": [x, y, 4.0, 4.0],
        "area": 16.0,
        "iscrowd": 0,
    }


def _build_fake_coco(root: Path) -> Path:
    images, annotations = [], []
    (root / "train2017").mkdir(parents=True)
    for image_id in range(1, NUM_IMAGES + 1):
        name = f"{image_id:012d}.jpg"
        (root / "train2017" / name).write_bytes(_jpeg(image_id))
        images.append({"id": image_id, "file_name": name, "width": 8, "height": 8})
        annotations.append(_annotation(len(annotations) + 1, image_id, 1))
        if image_id in DOG_IMAGES:
            annotations.append(_annotation(len(annotations) + 1, image_id, 18))
    instances = {
        "info": {"description": "fake COCO"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": CATEGORIES,
    }
    (root / "annotations").mkdir()
    with zipfile.ZipFile(root / "annotations" / "annotations_trainval2017.zip", "w") as archive:
        archive.writestr("annotations/instances_train2017.json", json.dumps(instances))
    return root


@pytest.fixture
def server(tmp_path, monkeypatch):
    state = FakeServer(root=_build_fake_coco(tmp_path / "site"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setenv("COLORLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("COLORLIB_OFFLINE", raising=False)
    monkeypatch.delenv("COLORLIB_COCO_URL", raising=False)
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _image_url(server: FakeServer, image_id: int = 1) -> tuple[str, bytes]:
    name = f"train2017/{image_id:012d}.jpg"
    return f"{server.url}/{name}", (server.root / name).read_bytes()


# ---------------------------------------------------------------- download_file


def test_download_file_writes_the_bytes_atomically(server, tmp_path):
    url, data = _image_url(server)
    dest = tmp_path / "out" / "a.jpg"
    assert download_file(url, dest, progress=False) == dest
    assert dest.read_bytes() == data
    assert not dest.with_name("a.jpg.part").exists()


def test_download_file_keeps_a_file_with_the_expected_checksum(server, tmp_path):
    url, data = _image_url(server)
    dest = tmp_path / "a.jpg"
    dest.write_bytes(data)
    download_file(url, dest, expected_sha256=hashlib.sha256(data).hexdigest(), progress=False)
    assert server.paths() == []
    dest.write_bytes(b"stale")  # a mismatching file is fetched again
    download_file(url, dest, expected_sha256=hashlib.sha256(data).hexdigest(), progress=False)
    assert dest.read_bytes() == data and len(server.paths()) == 1


def test_download_file_rejects_a_wrong_checksum(server, tmp_path):
    url, _ = _image_url(server)
    dest = tmp_path / "a.jpg"
    with pytest.raises(DownloadError, match="sha256") as info:
        download_file(url, dest, expected_sha256="0" * 64, progress=False)
    assert url in str(info.value)
    assert not dest.exists() and not dest.with_name("a.jpg.part").exists()


def test_download_file_resumes_a_part_file_with_range(server, tmp_path):
    url, data = _image_url(server)
    dest = tmp_path / "a.jpg"
    dest.with_name("a.jpg.part").write_bytes(data[:100])
    download_file(url, dest, progress=False)
    assert server.requests == [(url.removeprefix(server.url), "bytes=100-")]
    assert dest.read_bytes() == data
    assert not dest.with_name("a.jpg.part").exists()


def test_download_file_finishes_a_complete_part_file(server, tmp_path):
    url, data = _image_url(server)
    dest = tmp_path / "a.jpg"
    dest.with_name("a.jpg.part").write_bytes(data)  # e.g. killed just before the rename
    download_file(url, dest, progress=False)
    assert server.requests == [(url.removeprefix(server.url), f"bytes={len(data)}-")]  # 416
    assert dest.read_bytes() == data


def test_download_file_starts_over_when_a_resumed_file_fails_its_checksum(server, tmp_path):
    url, data = _image_url(server)
    dest = tmp_path / "a.jpg"
    dest.with_name("a.jpg.part").write_bytes(b"x" * 100)  # stale bytes from another file
    sha = hashlib.sha256(data).hexdigest()
    download_file(url, dest, expected_sha256=sha, backoff=0.0, progress=False)
    assert [header for _, header in server.requests] == ["bytes=100-", None]
    assert dest.read_bytes() == data


def test_download_file_restarts_when_the_server_ignores_range(server, tmp_path):
    server.ignore_range = True
    url, data = _image_url(server)
    dest = tmp_path / "a.jpg"
    dest.with_name("a.jpg.part").write_bytes(data[:100])
    download_file(url, dest, progress=False)
    assert server.requests[0][1] == "bytes=100-"
    assert dest.read_bytes() == data  # not the 100 old bytes followed by the whole file


def test_download_file_resumes_after_a_truncated_body(server, tmp_path):
    server.truncate_next = 1
    url, data = _image_url(server)
    dest = tmp_path / "a.jpg"
    download_file(url, dest, backoff=0.0, progress=False)
    assert [header for _, header in server.requests] == [None, f"bytes={len(data) // 2}-"]
    assert dest.read_bytes() == data


def test_download_file_retries_transient_failures(server, tmp_path):
    server.fail_next = 2
    url, data = _image_url(server)
    dest = tmp_path / "a.jpg"
    download_file(url, dest, backoff=0.0, progress=False)
    assert dest.read_bytes() == data and len(server.requests) == 3


def test_download_file_gives_up_naming_the_url(server, tmp_path):
    server.fail_next = 100
    url, _ = _image_url(server)
    with pytest.raises(DownloadError, match="gave up after 3 tries") as info:
        download_file(url, tmp_path / "a.jpg", retries=2, backoff=0.0, progress=False)
    assert url in str(info.value) and info.value.url == url
    assert len(server.requests) == 3


def test_download_file_404_fails_at_once_naming_the_url(server, tmp_path):
    url = f"{server.url}/train2017/missing.jpg"
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download_file(url, tmp_path / "missing.jpg", progress=False)
    assert url in str(info.value)
    assert len(server.requests) == 1  # a permanent error is not retried


# ---------------------------------------------------------------- download_coco_subset


def test_download_coco_subset_fetches_the_right_files(server, tmp_path):
    paths = download_coco_subset(4, base_url=server.url)
    assert len(paths) == 4 and len(set(paths)) == 4
    for path in paths:
        assert path.parent == tmp_path / "cache" / "coco" / "train2017"
        assert path.read_bytes() == (server.root / "train2017" / path.name).read_bytes()
    manifest = (paths[0].parent / "manifest.jsonl").read_text().splitlines()
    entries = {entry["name"]: entry for entry in map(json.loads, manifest)}
    assert set(entries) == {path.name for path in paths}
    assert entries[paths[0].name]["sha256"] == hashlib.sha256(paths[0].read_bytes()).hexdigest()
    assert not list(paths[0].parent.glob("*.part"))


def test_download_coco_subset_second_call_downloads_nothing(server):
    first = download_coco_subset(4, base_url=server.url)
    assert len(server.paths("/train2017/")) == 4
    server.requests.clear()
    assert download_coco_subset(4, base_url=server.url) == first
    assert server.paths() == []  # neither images nor the archive


def test_download_coco_subset_refetches_corrupted_files(server):
    paths = download_coco_subset(4, base_url=server.url)
    good = [path.read_bytes() for path in paths]
    damaged = bytearray(good[0])
    damaged[-3] ^= 0xFF
    paths[0].write_bytes(bytes(damaged))  # same size, other bytes
    paths[1].write_bytes(good[1][:50])  # truncated
    server.requests.clear()
    assert download_coco_subset(4, base_url=server.url) == paths
    assert sorted(server.paths()) == sorted(f"/train2017/{p.name}" for p in paths[:2])
    assert [path.read_bytes() for path in paths] == good


def test_download_coco_subset_resumes_after_a_failed_call(server, tmp_path):
    site = server.root / "train2017"
    hidden = {path: path.read_bytes() for path in sorted(site.iterdir())[:1]}
    for path in hidden:
        path.unlink()
    with pytest.raises(DownloadError):
        download_coco_subset(6, base_url=server.url)
    # the failure cancels downloads not yet started (how many depends on thread timing);
    # every photo that did arrive is recorded and must not be fetched again
    done = {p.name for p in (tmp_path / "cache" / "coco" / "train2017").glob("*.jpg")}
    assert not done & {p.name for p in hidden}
    for path, data in hidden.items():
        path.write_bytes(data)
    server.requests.clear()
    paths = download_coco_subset(6, base_url=server.url)
    fetched = {path.rsplit("/", 1)[1] for path in server.paths("/train2017/")}
    assert len(paths) == 6 and {p.name for p in hidden} <= fetched
    assert not fetched & done


def test_download_coco_subset_is_seeded_and_nested(server, tmp_path):
    four = download_coco_subset(4, dest=tmp_path / "a", base_url=server.url, seed=3)
    again = download_coco_subset(4, dest=tmp_path / "b", base_url=server.url, seed=3)
    two = download_coco_subset(2, dest=tmp_path / "a", base_url=server.url, seed=3)
    assert [p.name for p in four] == [p.name for p in again]
    assert two == four[:2]
    orders = {
        tuple(p.name for p in download_coco_subset(6, base_url=server.url, seed=s))
        for s in range(4)
    }
    assert len(orders) > 1


def test_download_coco_subset_restricts_to_categories(server, tmp_path):
    paths = download_coco_subset(2, base_url=server.url, categories=["dog"])
    assert {int(path.stem) for path in paths} == DOG_IMAGES
    with pytest.raises(ValueError, match="only 2 images match"):
        download_coco_subset(3, base_url=server.url, categories=["dog"])
    with pytest.raises(ValueError, match="unicorn"):
        download_coco_subset(1, base_url=server.url, categories=["unicorn"])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' mask code vs NumPy 2
def test_subset_annotations_load_with_pycocotools(server, tmp_path):
    from pycocotools.coco import COCO

    dest = tmp_path / "photos"
    paths = download_coco_subset(3, dest=dest, base_url=server.url, seed=1)
    subset = COCO(str(subset_annotation_file("train2017", dest)))
    chosen = {int(path.stem) for path in paths}
    assert set(subset.getImgIds()) == chosen
    expected = sum(1 + (image_id in DOG_IMAGES) for image_id in chosen)
    annotations = subset.loadAnns(subset.getAnnIds())
    assert len(annotations) == expected
    assert {annotation["image_id"] for annotation in annotations} == chosen
    assert subset.annToMask(annotations[0]).sum() > 0  # the polygons survived
    assert {c["name"] for c in subset.loadCats(subset.getCatIds())} == {"person", "cat", "dog"}


def test_download_coco_subset_reads_the_url_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("COLORLIB_COCO_URL", server.url)
    assert len(download_coco_subset(1)) == 1
    assert server.paths("/annotations/") == ["/annotations/annotations_trainval2017.zip"]


def test_download_coco_subset_names_the_url_of_a_missing_image(server):
    for path in (server.root / "train2017").iterdir():
        path.unlink()
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download_coco_subset(1, base_url=server.url)
    assert f"{server.url}/train2017/0000000000" in str(info.value)


def test_download_coco_subset_rejects_bad_arguments(server):
    with pytest.raises(ValueError, match="test2017"):
        download_coco_subset(1, split="test2017", base_url=server.url)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="num_images"):
            download_coco_subset(bad, base_url=server.url)
    assert server.requests == []


# ---------------------------------------------------------------- coco_reachable


def test_coco_reachable_for_the_local_server(server, monkeypatch):
    assert coco_reachable(server.url)
    monkeypatch.setenv("COLORLIB_COCO_URL", server.url)
    assert coco_reachable()
    assert server.paths() == ["/annotations/annotations_trainval2017.zip"] * 2
    monkeypatch.setenv("COLORLIB_OFFLINE", "1")
    assert not coco_reachable(server.url)
    assert len(server.paths()) == 2  # offline: no request at all


def test_coco_reachable_is_false_when_the_server_only_answers_errors(server):
    (server.root / "annotations" / "annotations_trainval2017.zip").unlink()
    assert not coco_reachable(server.url)  # a 404 from a proxy or portal is not COCO
    server.fail_next = 1
    assert not coco_reachable(server.url)


def test_coco_reachable_is_false_for_a_closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert not coco_reachable(f"http://127.0.0.1:{port}", timeout=1.0)


def test_coco_reachable_gives_up_on_a_server_that_never_answers(monkeypatch):
    # a request that blocks forever (a black-holed DNS lookup or connection): the probe must
    # still answer False; the watchdog only turns a hang of the test run into a failure
    release = threading.Event()

    def blocked(*args, **kwargs):
        release.wait()
        raise OSError("released")

    monkeypatch.setattr(coco.urllib.request, "urlopen", blocked)
    answers = []
    worker = threading.Thread(target=lambda: answers.append(coco_reachable(timeout=0.1)))
    worker.start()
    worker.join(60)
    release.set()
    assert not worker.is_alive(), "coco_reachable did not give up on a request that hangs"
    assert answers == [False]


def test_module_default_url_is_the_official_one():
    assert coco.COCO_BASE_URL == "http://images.cocodataset.org"
