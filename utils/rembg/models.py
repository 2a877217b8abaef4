"""rembg model files: the table, where to find them and checksum verification (downloading: :mod:`.download`).

Every number here is read from rembg's ``sessions/*.py`` (URL, checksum: md5 or sha256, input size,
normalisation, output activation); ``tests/test_rembg_models.py`` compares the table with the installed
rembg's source. Two kinds of entry have no file of their own: ``birefnet-general-fp16`` runs
birefnet-general's verified file in half precision (``source``, ``half``), and the ``*_custom`` models run
the user's own ONNX file (``model_file``, looked up only inside the model folders, as rembg's
``validate_model_path``), with the input size and normalisation of the chosen name.

Search order for ``<name>.onnx`` (or the file name of its release URL):
1. ComfyUI's ``models/rembg`` folders (``runtime.model_dirs("rembg")``, extra_model_paths.yaml included);
2. ``$U2NET_HOME`` (default ``$XDG_DATA_HOME/.u2net`` or ``~/.u2net``): rembg's flat layout;
3. rembg's per-model layout ``<home>/models/<name>/`` with home ``$U2NET_HOME``, else ``$REMBG_HOME``,
   else ``$XDG_DATA_HOME/rembg`` or ``~/.rembg``.
The first file found is used, after its checksum matches rembg's (cached per path, size and times).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .. import runtime
from ..checks import check_choice, fail

log = logging.getLogger("cleancut")

RELEASE = "https://github.com/danielgatis/rembg/releases/download/v0.0.0/"
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass(frozen=True)
class ModelSpec:
    """One rembg model: its file, checksum, and the pre/post-processing rembg applies around it."""

    name: str
    url: str  # "" when there is nothing to download (a source model's file, or the user's own)
    checksum: str  # as rembg passes it to pooch: "md5:<hex>" or "sha256:<hex>"; "" when rembg checks none
    size: int  # square input side: rembg resizes every photo to size x size (PIL LANCZOS)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    sigmoid: bool  # BiRefNet outputs logits; the others output probabilities
    megabytes: int  # approximate download size
    use: str
    source: str = ""  # the model whose verified file this one runs (birefnet-general-fp16)
    half: bool = False  # run in float16 on a GPU (backends.torch_dtype); float32 on the CPU
    custom: bool = False  # the user's own file, named by the model_file option

    @property
    def algorithm(self) -> str:
        """The checksum's hash, "md5" or "sha256" ("" without a checksum)."""
        return self.checksum.partition(":")[0]

    @property
    def digest(self) -> str:
        """The expected hex digest of the file."""
        return self.checksum.partition(":")[2]

    @property
    def md5(self) -> str:
        """The expected md5, for the models rembg checks by md5 ("" for the others)."""
        return self.digest if self.algorithm == "md5" else ""

    @property
    def filename(self) -> str:
        return f"{self.name}.onnx"  # the name rembg stores it under

    @property
    def names(self) -> tuple[str, ...]:
        """File names accepted on disk: rembg's ``<name>.onnx`` and the release asset's own name."""
        if not self.url:
            return (self.filename,)
        return tuple(dict.fromkeys((self.filename, self.url.rsplit("/", 1)[1])))


def _spec(name, asset, checksum, size, norm, sigmoid, mb, use, **extra):
    return ModelSpec(name, RELEASE + asset if asset else "", checksum, size, norm[0], norm[1], sigmoid, mb, use,
                     **extra)


_BIREFNET = "BiRefNet, 1024 px input (slow on CPU): "
HALF_NORM = ((0.5, 0.5, 0.5), (1.0, 1.0, 1.0))  # IS-Net's and BEN2's: mean 0.5, std 1
_CUSTOM = "your own ONNX file (model_file), run as rembg's {}: {} px input, {} normalisation"
MODELS: dict[str, ModelSpec] = {s.name: s for s in (
    _spec("u2netp", "u2netp.onnx", "md5:8e83ca70e441ab06c318d82300c84806", 320, IMAGENET, False, 5,
          "small general model; the default, fast on CPU"),
    _spec("u2net", "u2net.onnx", "md5:60024c5c889badc19c04ad937298a77b", 320, IMAGENET, False, 176,
          "general model, better edges than u2netp"),
    _spec("u2net_human_seg", "u2net_human_seg.onnx", "md5:c09ddc2e0104f800e3e1bb4652583d1f", 320, IMAGENET,
          False, 176, "people"),
    _spec("silueta", "silueta.onnx", "md5:55e59e0d8062d2f5d013f4725ee84782", 320, IMAGENET, False, 43,
          "u2net pruned to 43 MB, similar results"),
    _spec("isnet-general-use", "isnet-general-use.onnx", "md5:fc16ebd8b0c10d971d3513d564d01e29", 1024,
          HALF_NORM, False, 179, "IS-Net, 1024 px input: general, fine detail"),
    _spec("isnet-anime", "isnet-anime.onnx", "md5:6f184e756bb3bd901c8849220a83e38e", 1024,
          (IMAGENET[0], (1.0, 1.0, 1.0)), False, 176, "IS-Net for anime / illustration characters"),
    _spec("birefnet-general", "BiRefNet-general-epoch_244.onnx", "md5:7a35a0141cbbc80de11d9c9a28f52697", 1024,
          IMAGENET, True, 973, _BIREFNET + "general, best quality"),
    _spec("birefnet-general-lite", "BiRefNet-general-bb_swin_v1_tiny-epoch_232.onnx",
          "md5:4fab47adc4ff364be1713e97b7e66334", 1024, IMAGENET, True, 224, _BIREFNET + "general, lighter"),
    _spec("birefnet-portrait", "BiRefNet-portrait-epoch_150.onnx", "md5:c3a64a6abf20250d090cd055f12a3b67",
          1024, IMAGENET, True, 973, _BIREFNET + "portraits"),
    _spec("birefnet-dis", "BiRefNet-DIS-epoch_590.onnx", "md5:2d4d44102b446f33a4ebb2e56c051f2b", 1024,
          IMAGENET, True, 973, _BIREFNET + "dichotomous image segmentation (objects)"),
    _spec("birefnet-hrsod", "BiRefNet-HRSOD_DHU-epoch_115.onnx", "md5:c017ade5de8a50ff0fd74d790d268dda", 1024,
          IMAGENET, True, 973, _BIREFNET + "high-resolution salient objects"),
    _spec("birefnet-cod", "BiRefNet-COD-epoch_125.onnx", "md5:f6d0d21ca89d287f17e7afe9f5fd3b45", 1024,
          IMAGENET, True, 973, _BIREFNET + "camouflaged objects"),
    _spec("birefnet-massive", "BiRefNet-massive-TR_DIS5K_TR_TEs-epoch_420.onnx",
          "md5:33e726a2136a3d59eb0fdf613e31e3e9", 1024, IMAGENET, True, 973, _BIREFNET + "massive training set"),
    # models added after the node shipped: appended, so saved workflows keep their combo values
    _spec("bria-rmbg", "bria-rmbg-2.0.onnx",
          "sha256:5b486f08200f513f460da46dd701db5fbb47d79b4be4b708a19444bcd4e79958", 1024, IMAGENET, False, 1000,
          "BRIA RMBG-2.0, 1024 px input: general, high quality. Weights licensed NON-COMMERCIAL (CC BY-NC 4.0): "
          "commercial use needs a licence from BRIA AI"),
    _spec("birefnet-general-fp16", "", "", 1024, IMAGENET, True, 0,
          _BIREFNET + "birefnet-general's own file run in float16 on a GPU (faster there); float32 on the CPU",
          source="birefnet-general", half=True),
    _spec("u2net_custom", "", "", 320, IMAGENET, False, 0, _CUSTOM.format("u2net_custom", 320, "ImageNet"),
          custom=True),
    _spec("dis_custom", "", "", 1024, HALF_NORM, False, 0,
          _CUSTOM.format("dis_custom (IS-Net / DIS)", 1024, "mean 0.5, std 1"), custom=True),
    _spec("ben_custom", "", "", 1024, HALF_NORM, False, 0,
          _CUSTOM.format("ben_custom (BEN2)", 1024, "mean 0.5, std 1"), custom=True),
)}
MODEL_NAMES = tuple(MODELS)  # the node's combo; u2netp first (the small default)
CUSTOM_NAMES = tuple(n for n, s in MODELS.items() if s.custom)

# rembg's other sessions, and why the combo leaves them out (README.md repeats this).
EXCLUDED = {
    "u2net_cloth_seg": "returns three clothing masks (upper body, lower body, full) stacked, not a subject mask",
    "sam": "Segment Anything: needs prompt points or boxes, one mask per prompt",
    "withoutbg": "a paid remote API: needs credentials and sends the images off the machine",
    "atlascloud": "a paid remote API: needs credentials and sends the images off the machine",
}


def spec(name: str) -> ModelSpec:
    """The table entry for ``name``; a :class:`~..checks.SettingError` naming the choices otherwise."""
    check_choice(name, "model", MODEL_NAMES)
    return MODELS[name]


def _home(var: str, default: str) -> Path:
    return Path(os.path.expanduser(os.environ.get(var) or default))


def legacy_home() -> Path:
    """rembg's flat folder: ``$U2NET_HOME``, else ``$XDG_DATA_HOME/.u2net`` or ``~/.u2net``."""
    return _home("U2NET_HOME", os.path.join(os.environ.get("XDG_DATA_HOME", "~"), ".u2net"))


def rembg_home() -> Path:
    """rembg's current root (``<root>/models/<name>/``): ``$U2NET_HOME`` wins, as in rembg."""
    if os.environ.get("U2NET_HOME"):
        return legacy_home()
    xdg = os.environ.get("XDG_DATA_HOME")
    return _home("REMBG_HOME", os.path.join(xdg, "rembg") if xdg else os.path.join("~", ".rembg"))


def search_dirs(name: str) -> list[Path]:
    """Folders searched for ``name``'s file, in order (see the module docstring)."""
    dirs = [Path(d) for d in runtime.model_dirs("rembg")]
    return [*dirs, legacy_home(), rembg_home() / "models" / name]


def default_dir() -> Path:
    """Where a fetched model goes: ComfyUI's ``models/rembg`` inside ComfyUI, else rembg's ``~/.u2net``."""
    dirs = runtime.model_dirs("rembg")
    return Path(dirs[0]) if dirs else legacy_home()


@cache
def _digest_cached(path: str, size: int, mtime_ns: int, ctime_ns: int, inode: int, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def digest_of(path: str | os.PathLike, algorithm: str = "md5") -> str:
    """The file's ``algorithm`` digest (md5, sha256), computed once per (path, size, mtime, ctime, inode).

    Big models are read a single time. The change time is in the key because a rewrite can restore the
    mtime (``touch -r``, a copy tool) but never the ctime, so a same-size corrupted file is read again.
    """
    st = os.stat(path)
    return _digest_cached(os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, algorithm)


def md5_of(path: str | os.PathLike) -> str:
    """The file's md5 (:func:`digest_of`, cached)."""
    return digest_of(path, "md5")


def matches(path: str | os.PathLike, s: ModelSpec) -> bool:
    """Whether the file's digest is the one ``s`` names, by ``s``'s algorithm."""
    return digest_of(path, s.algorithm) == s.digest


def _howto(s: ModelSpec) -> str:
    places = ", ".join(str(d) for d in search_dirs(s.name)[:2])
    return (f"Put {s.filename} ({s.algorithm} {s.digest}, ~{s.megabytes} MB, from {s.url}) into one of: {places} "
            f"(ComfyUI: ComfyUI/models/rembg), or run: cleancut models fetch {s.name}")


def file_spec(name: str) -> ModelSpec:
    """The entry whose file ``name`` runs: its own, or its ``source``'s (birefnet-general-fp16)."""
    s = spec(name)
    return MODELS[s.source] if s.source else s


def find(name: str) -> Path | None:
    """The first existing file for ``name`` in :func:`search_dirs`, unverified; ``None`` if there is none
    (always for the ``*_custom`` models, whose file is :func:`custom_path`'s)."""
    s = file_spec(name)
    if s.custom:
        return None
    for folder in search_dirs(s.name):
        for fname in s.names:
            path = folder / fname
            if path.is_file():
                return path
    return None


def _not_files(s: ModelSpec) -> str:
    """A hint for entries under the model's file names that are not regular files (folder, FIFO, broken link)."""
    notes = []
    for folder in search_dirs(s.name):
        for fname in s.names:
            path = folder / fname
            if os.path.islink(path) and not path.exists():
                notes.append(f"{path} is a link to nothing ({os.readlink(path)})")
            elif path.exists() and not path.is_file():
                notes.append(f"{path} is {'a folder' if path.is_dir() else 'not a regular file'}")
    return f" Found but not usable: {'; '.join(notes)}: remove or replace it." if notes else ""


def model_path(name: str) -> Path:
    """The verified file for ``name`` (for birefnet-general-fp16: birefnet-general's).

    Raises:
        RuntimeError: no file in any searched folder, or the first one found has the wrong checksum; the
            message names the file, the algorithm and expected digest, the folder to put it in and the fetch
            command.
        SettingError: ``name`` is a ``*_custom`` model, whose file is named by ``model_file`` (:func:`resolve`).
    """
    s = file_spec(name)
    if s.custom:
        check_model_file(name, "")
    path = find(s.name)
    if path is None:
        searched = "; ".join(str(d) for d in search_dirs(s.name))
        raise RuntimeError(f"rembg model '{s.name}' not found (searched: {searched}).{_not_files(s)} {_howto(s)}")
    try:
        got = digest_of(path, s.algorithm)
    except OSError as exc:
        raise RuntimeError(f"rembg model file {path} cannot be read ({exc.strerror or exc}): check its "
                           f"permissions (expected {s.algorithm} {s.digest}), or remove it and: {_howto(s)}") from exc
    if got != s.digest:
        raise RuntimeError(f"rembg model file {path} is corrupt or a different model: {s.algorithm} {got}, "
                           f"expected {s.digest}. Delete it, then: {_howto(s)}")
    return path


# ---- the *_custom models: the user's own file, inside the model folders only (rembg's validate_model_path) ----

def custom_roots(name: str) -> list[Path]:
    """Folders a ``model_file`` may lie in (subfolders included): ComfyUI's ``models/rembg``, rembg's homes."""
    return list(dict.fromkeys([*(Path(d) for d in runtime.model_dirs("rembg")), legacy_home(), rembg_home()]))


def _inside(path: str, roots: list[Path]) -> bool:
    return any(path == (r := os.path.abspath(root)) or path.startswith(r.rstrip(os.sep) + os.sep) for root in roots)


def check_model_file(name: str, model_file: str) -> None:
    """A :class:`~..checks.SettingError` naming ``model_file`` unless it fits ``name``: required by the
    ``*_custom`` models, refused by the others, and never a path out of the model folders."""
    s = spec(name)
    if not isinstance(model_file, str):
        fail("model_file", f"expected a file name (text), got {type(model_file).__name__}.")
    given = model_file.strip() != ""
    if s.custom and not given:
        fail("model_file", f"rembg model '{name}' runs your own ONNX file: put it into ComfyUI/models/rembg (or "
             f"{legacy_home()}) and give its file name here (CLI: --model-file).")
    if given and not s.custom:
        fail("model_file", f"'{model_file}' only applies to the *_custom models ({', '.join(CUSTOM_NAMES)}); "
             f"'{name}' has its own verified file. Clear model_file, or choose a *_custom model.")
    if not given:
        return
    path = Path(os.path.expanduser(model_file))
    if path.is_absolute() and not _inside(os.path.abspath(path), custom_roots(name)):
        fail("model_file", f"{model_file} lies outside the model folders; like rembg, only files inside them are "
             f"loaded. Move it into one of: {', '.join(map(str, custom_roots(name)))}, and give its file name.")
    if not path.is_absolute() and ".." in path.parts:
        fail("model_file", f"'{model_file}' leaves the model folders ('..'); give a file name inside one of: "
             f"{', '.join(map(str, custom_roots(name)))}.")


def custom_path(name: str, model_file: str) -> Path:
    """The user's file for the ``*_custom`` model ``name``: a file name (or a path below a model folder) is
    looked up in :func:`search_dirs`; an absolute path must lie inside :func:`custom_roots`. Unverified: it
    has no published checksum.

    Raises:
        SettingError: see :func:`check_model_file`. RuntimeError: no such file; the message lists the folders.
    """
    check_model_file(name, model_file)
    path = Path(os.path.expanduser(model_file.strip()))
    candidates = [path] if path.is_absolute() else [folder / path for folder in search_dirs(name)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    where = "; ".join(dict.fromkeys(str(c.parent) for c in candidates))
    raise RuntimeError(f"model_file: '{model_file}' for rembg model '{name}' is not a file (searched: {where}). "
                       "Put your ONNX file into ComfyUI/models/rembg (or one of those folders) and give its file "
                       "name in model_file (CLI: --model-file).")


@dataclass(frozen=True)
class Model:
    """A model ready to load: its table entry and its verified file. Made once, by :func:`resolve`."""

    spec: ModelSpec
    path: Path

    @property
    def name(self) -> str:
        return self.spec.name


def resolve(name: str, model_file: str = "") -> Model:
    """The one lookup of a model name: its :class:`ModelSpec` and its verified file.

    birefnet-general-fp16 gets birefnet-general's verified file; a ``*_custom`` model the user's
    ``model_file`` (:func:`custom_path`), with the table's input size and normalisation for that name.

    Raises:
        SettingError: ``name`` is not in the table, or ``model_file`` does not fit it (:func:`check_model_file`).
        RuntimeError: the file is missing or corrupt (see :func:`model_path`, :func:`custom_path`).
    """
    s = spec(name)
    if s.custom:
        return Model(s, custom_path(name, model_file))
    check_model_file(name, model_file)
    return Model(s, model_path(name))


def status_rows() -> list[str]:
    """One line per model for ``cleancut models list``: name, state, path, size, use."""
    rows = []
    for s in MODELS.values():
        if s.custom:  # no file of its own: the user names one per run
            rows.append(f"{s.name:22} {'custom':8} {'':>4}     (model_file / --model-file: a file in "
                        f"{default_dir()})  {s.use}")
            continue
        f = file_spec(s.name)
        path = find(s.name)
        state = "missing" if path is None else ("ok" if matches(path, f) else f"CORRUPT ({f.algorithm} mismatch)")
        rows.append(f"{s.name:22} {state:8} ~{f.megabytes:>4} MB  {path or default_dir() / f.filename}  {s.use}")
    return rows
