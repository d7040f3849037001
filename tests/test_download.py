import hashlib
import io
import socket
import stat
import time
import zipfile

import pytest

from file_server import FileServer
from vit_ms.__main__ import main
from vit_ms.download import download, download_course_checkpoint, download_course_dataset, safe_extract_zip


def make_zip(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():  # name: a str or a ZipInfo
            archive.writestr(name, data)
    return buffer.getvalue()


def sha(data):
    return hashlib.sha256(data).hexdigest()


PAYLOAD = bytes(range(256)) * 4000  # 1 MB: several read chunks


def test_download_with_checksum(tmp_path):
    with FileServer({"/f.bin": PAYLOAD}) as server:
        path = download(server.url("/f.bin"), tmp_path / "sub" / "f.bin", sha256=sha(PAYLOAD))
    assert path == tmp_path / "sub" / "f.bin" and path.read_bytes() == PAYLOAD
    assert not (tmp_path / "sub" / "f.bin.part").exists()
    assert [r["range"] for r in server.requests] == [None]


def test_existing_valid_file_is_not_downloaded_again(tmp_path):
    (tmp_path / "f.bin").write_bytes(PAYLOAD)
    with FileServer({"/f.bin": PAYLOAD}) as server:
        download(server.url("/f.bin"), tmp_path / "f.bin", sha256=sha(PAYLOAD))
    assert server.requests == []


def test_resume_requests_only_the_missing_bytes(tmp_path):
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:300_000])
    with FileServer({"/f.bin": PAYLOAD}) as server:
        path = download(server.url("/f.bin"), tmp_path / "f.bin", sha256=sha(PAYLOAD))
    assert path.read_bytes() == PAYLOAD
    assert server.requests == [{"path": "/f.bin", "range": "bytes=300000-", "sent": len(PAYLOAD) - 300_000}]


def test_server_ignoring_range_restarts_from_zero(tmp_path):
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:1000])
    with FileServer({"/f.bin": PAYLOAD}, ignore_range=True) as server:
        path = download(server.url("/f.bin"), tmp_path / "f.bin", sha256=sha(PAYLOAD))
    assert path.read_bytes() == PAYLOAD  # not the first 1000 bytes twice
    assert server.requests[0]["sent"] == len(PAYLOAD)


def test_complete_part_file_answered_416_restarts(tmp_path):
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD + b"extra")
    with FileServer({"/f.bin": PAYLOAD}) as server:
        path = download(server.url("/f.bin"), tmp_path / "f.bin", sha256=sha(PAYLOAD))
    assert path.read_bytes() == PAYLOAD
    assert [r["range"] for r in server.requests] == [f"bytes={len(PAYLOAD) + 5}-", None]


def test_interrupted_download_keeps_part_and_resumes(tmp_path):
    dest = tmp_path / "f.bin"
    with FileServer({"/f.bin": PAYLOAD}, cut_after=400_000) as server:
        with pytest.raises(ConnectionError, match="resume"):
            download(server.url("/f.bin"), dest)
    assert not dest.exists()
    assert (tmp_path / "f.bin.part").read_bytes() == PAYLOAD[:400_000]
    with FileServer({"/f.bin": PAYLOAD}) as server:
        download(server.url("/f.bin"), dest, sha256=sha(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[0]["range"] == "bytes=400000-"


def test_checksum_mismatch_deletes_the_file(tmp_path):
    wrong = "0" * 64
    with FileServer({"/f.bin": PAYLOAD}) as server:
        with pytest.raises(ValueError, match=f"expected {wrong}, got {sha(PAYLOAD)}"):
            download(server.url("/f.bin"), tmp_path / "f.bin", sha256=wrong)
    assert list(tmp_path.iterdir()) == []


def test_bad_sha256_argument(tmp_path):
    with pytest.raises(ValueError, match="64 hex digits"):
        download("http://127.0.0.1:1/f", tmp_path / "f", sha256="abc")


def test_http_error_is_reported(tmp_path):
    with FileServer({}) as server:
        with pytest.raises(ConnectionError, match="HTTP 404"):
            download(server.url("/missing.zip"), tmp_path / "missing.zip")
    assert list(tmp_path.iterdir()) == []


def unused_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_fails_fast_with_instructions(tmp_path):
    url = f"http://127.0.0.1:{unused_port()}/vit_b_16_224.ckpt"
    started = time.time()
    with pytest.raises(ConnectionError) as info:
        download_course_checkpoint(tmp_path / "ckpt", url=url)
    assert time.time() - started < 5
    message = str(info.value)
    assert url in message  # what to download
    assert str((tmp_path / "ckpt" / "vit_b_16_224.ckpt").resolve()) in message  # where to put it
    assert "python -m vit_ms make-sample-data" in message  # what works offline
    assert not (tmp_path / "ckpt" / "vit_b_16_224.ckpt").exists()


def test_cli_offline_exit_code_and_message(tmp_path, capsys):
    url = f"http://127.0.0.1:{unused_port()}/vit_imagenet_dataset.zip"
    assert main(["download", "dataset", "--dest", str(tmp_path), "--url", url]) == 2
    err = capsys.readouterr().err
    assert url in err and str((tmp_path / "vit_imagenet_dataset.zip").resolve()) in err


def symlink_member(name, target):
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize("bad", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt", "C:/evil.txt",
                                 symlink_member("link", "/etc/passwd")])
def test_zip_slip_rejected_before_extracting(tmp_path, bad):
    zip_path = tmp_path / "bad.zip"
    zip_path.write_bytes(make_zip({"dataset/train/a.txt": b"ok", bad: b"/etc/passwd"}))
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(ValueError, match="nothing was extracted"):
        safe_extract_zip(zip_path, dest)
    assert list(dest.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.zip", "out"]


def test_safe_extract_zip(tmp_path):
    zip_path = tmp_path / "good.zip"
    zip_path.write_bytes(make_zip({"top/a.txt": b"a", "top/sub/b.txt": b"b", "single.txt": b"s"}))
    created = safe_extract_zip(zip_path, tmp_path / "out")
    assert created == [(tmp_path / "out" / "single.txt").resolve(), (tmp_path / "out" / "top").resolve()]
    assert (tmp_path / "out" / "top" / "sub" / "b.txt").read_bytes() == b"b"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["single.txt", "top"]  # no scratch left
    with pytest.raises(FileExistsError, match="top"):
        safe_extract_zip(zip_path, tmp_path / "out")


COURSE_ZIP = make_zip({"dataset/train/n01440764/a.JPEG": b"1", "dataset/val/n01440764/b.JPEG": b"2",
                       "dataset/infer/n01440764/c.JPEG": b"3"})


def test_download_course_dataset(tmp_path):
    with FileServer({"/notebook/vit_imagenet_dataset.zip": COURSE_ZIP}) as server:
        root = download_course_dataset(tmp_path / "data", url=server.url("/notebook/vit_imagenet_dataset.zip"),
                                       sha256=sha(COURSE_ZIP))
        assert root.resolve() == (tmp_path / "data" / "dataset").resolve()
        assert (root / "val" / "n01440764" / "b.JPEG").read_bytes() == b"2"
        again = download_course_dataset(tmp_path / "data", url=server.url("/notebook/vit_imagenet_dataset.zip"))
    assert again.resolve() == root.resolve()
    assert len(server.requests) == 1  # the second call found the extracted dataset


def test_course_dataset_from_a_zip_put_there_by_hand(tmp_path):
    (tmp_path / "vit_imagenet_dataset.zip").write_bytes(COURSE_ZIP)
    url = f"http://127.0.0.1:{unused_port()}/vit_imagenet_dataset.zip"  # offline: must not be needed
    root = download_course_dataset(tmp_path, url=url, sha256=sha(COURSE_ZIP))
    assert (root / "train" / "n01440764" / "a.JPEG").is_file()


def test_course_dataset_without_train_val_is_an_error(tmp_path):
    (tmp_path / "vit_imagenet_dataset.zip").write_bytes(make_zip({"stuff/readme.txt": b"x"}))
    with pytest.raises(ValueError, match="train/ and val/"):
        download_course_dataset(tmp_path, url="http://127.0.0.1:1/vit_imagenet_dataset.zip")


def test_course_dataset_with_another_top_folder_is_found_again(tmp_path):
    zip_bytes = make_zip({"imagenet_subset/train/n1/a.JPEG": b"1", "imagenet_subset/val/n1/b.JPEG": b"2"})
    (tmp_path / "vit_imagenet_dataset.zip").write_bytes(zip_bytes)
    url = "http://127.0.0.1:1/vit_imagenet_dataset.zip"  # never contacted: the zip is there
    first = download_course_dataset(tmp_path, url=url)
    assert first.name == "imagenet_subset"
    assert download_course_dataset(tmp_path, url=url).resolve() == first.resolve()  # no second extraction


def test_corrupt_zip_is_reported(tmp_path):
    (tmp_path / "vit_imagenet_dataset.zip").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="not a valid zip file"):
        download_course_dataset(tmp_path, url="http://127.0.0.1:1/vit_imagenet_dataset.zip")
