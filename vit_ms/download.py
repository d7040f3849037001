"""Downloads for the course: the ImageNet subset of the MindSpore ViT tutorial and its ViT-B/16 checkpoint.

    python -m vit_ms download dataset       # -> data/dataset/{train,val,infer}
    python -m vit_ms download checkpoint    # -> checkpoints/vit_b_16_224.ckpt

download() resumes a partial file (HTTP Range into DEST.part), checks the SHA-256 when one is given and renames
DEST.part to DEST only when the file is complete and correct, so DEST never holds half a file. Without a network
it fails within seconds, saying where to get the file by hand and where to put it.
"""
import hashlib
import http.client
import os
import re
import shutil
import stat
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath

# The URLs of the MindSpore tutorial "Vision Transformer图像分类" (tutorials/source_zh_cn/cv/vit.ipynb).
# The zip (~490 MB) holds dataset/{train,val,infer}/<wnid>/*.JPEG and ILSVRC2012_devkit_t12.tar.gz.
COURSE_DATASET_URL = ("https://mindspore-website.obs.cn-north-4.myhuaweicloud.com/notebook/datasets/"
                      "vit_imagenet_dataset.zip")
COURSE_CHECKPOINT_URL = "https://download.mindspore.cn/vision/classification/vit_b_16_224.ckpt"  # ~330 MB
SAMPLE_DATA_HINT = ("No internet? The offline sample data needs no download: "
                    "python -m vit_ms make-sample-data data/sample")
CHUNK = 1 << 20


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _manual_hint(url, dest):
    return (f"Download {url} by hand (browser, or another machine) and put it at {Path(dest).resolve()}, "
            f"then run the same command again: a file already there is used as it is.\n{SAMPLE_DATA_HINT}")


def _open(url, offset, timeout):
    headers = {"User-Agent": "vit_ms"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def download(url, dest_path, sha256=None, timeout=15.0, resume=True):
    """Download ``url`` to ``dest_path`` with a progress bar and return the path.

    An existing dest_path is kept when it matches ``sha256`` (or when no sha256 is given). A partial download in
    DEST.part is continued with an HTTP Range request (restarted from zero if the server ignores Range). A
    SHA-256 mismatch deletes the downloaded file and raises ValueError with both hashes. Network failures raise
    ConnectionError saying how to get the file by hand; ``timeout`` (seconds) bounds connecting and each read.
    """
    from .runtime import progress_bar

    dest = Path(dest_path)
    if sha256 is not None:
        if not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
            raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
        sha256 = sha256.lower()
    if dest.is_file():
        if sha256 is None:
            return dest
        actual = sha256_of(dest)
        if actual == sha256:
            return dest
        print(f"{dest} has SHA-256 {actual}, expected {sha256}: downloading it again", file=sys.stderr)
        dest.unlink()

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if part.exists() and not resume:
        part.unlink()
    offset = part.stat().st_size if part.exists() else 0
    try:
        try:
            response = _open(url, offset, timeout)
        except urllib.error.HTTPError as err:
            if err.code != 416 or not offset:  # 416: the range starts past the end; start again from zero
                raise
            part.unlink()
            offset = 0
            response = _open(url, offset, timeout)
        with response:
            if offset and response.status != 206:  # the server ignored Range and sends the whole file
                print(f"{urllib.parse.urlsplit(url).netloc} does not resume downloads; starting again",
                      file=sys.stderr)
                offset = 0
            elif offset and not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
                raise ConnectionError(f"asked for bytes {offset}- of {url}, got {response.headers['Content-Range']}")
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None else None
            with open(part, "ab" if offset else "wb") as f, \
                    progress_bar(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                         desc=dest.name) as bar:
                for block in iter(lambda: response.read(CHUNK), b""):
                    f.write(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as err:
        raise ConnectionError(f"{url} answered HTTP {err.code} {err.reason}.\n{_manual_hint(url, dest)}") from err
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as err:
        reason = getattr(err, "reason", err)
        saved = part.stat().st_size if part.exists() else 0
        kept = f" The {saved} bytes received are kept in {part}; running again resumes." if saved else ""
        raise ConnectionError(f"could not download {url}: {reason}.{kept}\n{_manual_hint(url, dest)}") from err

    size = part.stat().st_size
    if total is not None and size != total:
        raise ConnectionError(f"the download of {url} stopped at {size} of {total} bytes; run again to resume "
                              f"({part} is kept).")
    if sha256 is not None:
        actual = sha256_of(part)
        if actual != sha256:
            part.unlink()
            raise ValueError(f"SHA-256 mismatch for {url}: expected {sha256}, got {actual}; "
                             f"the downloaded file was deleted")
    os.replace(part, dest)
    return dest


def _open_zip(zip_path):
    if not Path(zip_path).is_file():
        raise FileNotFoundError(f"no zip file at {zip_path}")
    try:
        return zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as err:
        raise ValueError(f"{zip_path} is not a valid zip file ({err}); delete it and download it again") from err


def _top_level_names(archive):
    return sorted({PurePosixPath(m.filename.replace("\\", "/")).parts[0] for m in archive.infolist()})


def _unsafe_reason(info, dest):
    """Why a zip member must not be extracted into dest (zip slip), or None."""
    name = info.filename
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
        return "absolute path"
    if ".." in re.split(r"[\\/]", name):
        return "'..' in the path"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link"
    if not (dest / name).resolve().is_relative_to(dest):
        return "resolves outside the destination"
    return None


def safe_extract_zip(zip_path, dest_dir):
    """Extract ``zip_path`` into ``dest_dir`` and return the top-level paths it created.

    Every member is checked first: an absolute path, a '..' component or a symbolic link rejects the whole archive
    (ValueError) before anything is written. Members are extracted into a scratch folder and moved into place at
    the end, so an interrupted extraction leaves no half-filled folder behind.
    """
    from .runtime import progress_bar

    zip_path, dest = Path(zip_path), Path(dest_dir).resolve()
    with _open_zip(zip_path) as archive:
        members = archive.infolist()
        unsafe = [f"{m.filename!r} ({reason})" for m in members if (reason := _unsafe_reason(m, dest))]
        if unsafe:
            raise ValueError(f"{zip_path} has members that would be written outside {dest}; nothing was extracted: "
                             + ", ".join(unsafe))
        top_level = _top_level_names(archive)
        clashes = [name for name in top_level if (dest / name).exists()]
        if clashes:
            raise FileExistsError(f"{zip_path} would overwrite {', '.join(str(dest / n) for n in clashes)}; "
                                  f"move or delete it first")
        scratch = dest / f".{zip_path.name}.partial"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        with progress_bar(total=sum(m.file_size for m in members), unit="B", unit_scale=True, unit_divisor=1024,
                  desc=f"extracting {zip_path.name}") as bar:
            for member in members:
                archive.extract(member, scratch)
                bar.update(member.file_size)
    for name in top_level:
        (scratch / name).replace(dest / name)
    scratch.rmdir()
    return [dest / name for name in top_level]


def _split_root(candidates):
    """The first of ``candidates`` (or a folder directly inside one) holding train/ and val/, else None."""
    for candidate in candidates:
        if not candidate.is_dir():
            continue
        for folder in [candidate, *sorted(p for p in candidate.iterdir() if p.is_dir())]:
            if (folder / "train").is_dir() and (folder / "val").is_dir():
                return folder
    return None


def download_course_dataset(dest_dir="data", url=COURSE_DATASET_URL, sha256=None, timeout=15.0):
    """Download and extract the tutorial's ImageNet subset; return the folder holding train/ and val/.

    Nothing is downloaded when DEST/dataset is already extracted, nor when the zip is already in DEST.
    """
    dest_dir = Path(dest_dir)
    zip_path = dest_dir / Path(urllib.parse.urlsplit(url).path).name
    root = _split_root([dest_dir / "dataset"])  # where the tutorial's zip extracts to
    if root is None:
        download(url, zip_path, sha256=sha256, timeout=timeout)  # skipped when the zip is already there
        with _open_zip(zip_path) as archive:
            extracted = [dest_dir / name for name in _top_level_names(archive)]
        if not all(path.exists() for path in extracted):
            extracted = safe_extract_zip(zip_path, dest_dir)
        root = _split_root(extracted)
        if root is None:
            raise ValueError(f"{zip_path} holds no folder with train/ and val/ sub-folders; is it the right file?")
    return root


def download_course_checkpoint(dest_dir="checkpoints", url=COURSE_CHECKPOINT_URL, sha256=None, timeout=15.0):
    """Download the tutorial's ViT-B/16 (224x224) MindSpore checkpoint; return its path."""
    path = download(url, Path(dest_dir) / Path(urllib.parse.urlsplit(url).path).name, sha256=sha256,
                    timeout=timeout)
    return path
