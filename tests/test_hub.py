"""colorlib.models.hub: released DDColor weights by name, against a Hub stand-in on 127.0.0.1.

The stand-in answers ``/<repo>/resolve/<revision>/<file>`` as the Hugging Face Hub does for
``huggingface_hub.hf_hub_download`` (``X-Repo-Commit``, ``ETag``, ``Content-Length``, 404 with
``X-Error-Code: EntryNotFound``) and logs every GET. It serves a DDColor "micro" in both file
formats a ``PyTorchModelHubMixin`` repository may hold; never the internet.
"""

from __future__ import annotations

import hashlib
import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from safetensors.torch import save as save_safetensors

from colorlib import inference
from colorlib.models import hub
from colorlib.models.ddcolor import DDColor, build_ddcolor

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _micro_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {
        k: v.contiguous() for k, v in build_ddcolor("micro", pretrained=False).state_dict().items()
    }


class FakeHub:
    """Files by ``repo/filename``; ``gets`` lists the files sent."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.gets: list[str] = []
        self.lock = threading.Lock()

    def handler(self):
        hub_state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _answer(self, body: bool) -> None:
                parts = self.path.lstrip("/").split("/")
                key = "/".join(parts[:2] + parts[4:])  # owner/name/resolve/<rev>/<file>
                data = hub_state.files.get(key)
                if data is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("X-Repo-Commit", COMMIT)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    with hub_state.lock:
                        hub_state.gets.append(key)
                    self.wfile.write(data)

            def do_HEAD(self) -> None:  # noqa: N802 (http.server's names)
                self._answer(body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._answer(body=True)

        return Handler


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    import huggingface_hub.constants

    state = FakeHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), state.handler())
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("COLORLIB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setitem(
        hub.RELEASED_WEIGHTS, "micro-st", hub.HubWeights("colorlib/micro-st", "micro", "test")
    )
    monkeypatch.setitem(
        hub.RELEASED_WEIGHTS, "micro-bin", hub.HubWeights("colorlib/micro-bin", "micro", "test")
    )
    state.files["colorlib/micro-st/model.safetensors"] = save_safetensors(_micro_state(1))
    buffer = io.BytesIO()
    torch.save(_micro_state(2), buffer)
    state.files["colorlib/micro-bin/pytorch_model.bin"] = buffer.getvalue()
    yield state
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("name", "seed"), [("micro-st", 1), ("micro-bin", 2)])
def test_loads_either_file_format_and_caches_it(fake_hub, name, seed, capsys):
    model = hub.load_released(name)
    assert isinstance(model, DDColor) and not model.training
    expected = _micro_state(seed)
    assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())
    assert model.hub_commit == COMMIT and COMMIT in capsys.readouterr().err
    sent = list(fake_hub.gets)
    assert len(sent) == 1 and sent[0].startswith(f"colorlib/{name}/")
    hub.load_released(name)  # second call: from the cache, nothing downloaded again
    assert fake_hub.gets == sent


def test_load_colorizer_takes_the_names_and_the_authors_size(fake_hub):
    model, size = inference.load_colorizer("micro-st")
    assert isinstance(model, DDColor) and size == inference.RELEASED_DDCOLOR_SIZE == 512


def test_a_truncated_file_is_refused_clearly(fake_hub):
    data = fake_hub.files["colorlib/micro-st/model.safetensors"]
    fake_hub.files["colorlib/micro-st/model.safetensors"] = data[: len(data) // 2]
    with pytest.raises(ValueError, match="damaged or truncated"):
        hub.load_released("micro-st")


def test_weights_of_another_architecture_are_refused_naming_the_keys(fake_hub):
    state = _micro_state()
    state.pop("refine_net.0.bias", None) or state.pop(next(iter(state)))
    state["extra.weight"] = torch.zeros(3)
    fake_hub.files["colorlib/micro-st/model.safetensors"] = save_safetensors(state)
    with pytest.raises(ValueError, match=r"does not match this DDColor.*extra\.weight"):
        hub.load_released("micro-st")


def test_offline_and_not_cached_is_one_clear_error(fake_hub, monkeypatch):
    monkeypatch.setenv("COLORLIB_OFFLINE", "1")
    with pytest.raises(hub.WeightsUnavailable, match="not in the Hugging Face cache"):
        hub.load_released("micro-st")
    assert fake_hub.gets == []  # offline: not even asked
    monkeypatch.delenv("COLORLIB_OFFLINE")
    hub.load_released("micro-st")  # cached now ...
    monkeypatch.setenv("COLORLIB_OFFLINE", "1")
    assert isinstance(hub.load_released("micro-st"), DDColor)  # ... and usable offline


def test_an_unreachable_hub_is_one_clear_error(fake_hub, monkeypatch):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(hub.WeightsUnavailable, match="cannot be downloaded here"):
        hub.load_released("micro-st")


def test_the_authors_checkpoints_are_named_and_sized():
    assert set(hub.RELEASED_WEIGHTS) >= {
        "ddcolor-tiny",
        "ddcolor-paper",
        "ddcolor-modelscope",
        "ddcolor-artistic",
    }
    assert hub.DEFAULT_RELEASED == "ddcolor-modelscope"
    assert hub.RELEASED_WEIGHTS["ddcolor-tiny"].preset == "tiny"
    assert {w.preset for k, w in hub.RELEASED_WEIGHTS.items() if k != "ddcolor-tiny"} == {"large"}
    assert hub.is_released_name("ddcolor-tiny") and not hub.is_released_name("model.pt")
    with pytest.raises(ValueError, match="unknown released weights 'ddcolor-huge'"):
        hub.load_released("ddcolor-huge")
