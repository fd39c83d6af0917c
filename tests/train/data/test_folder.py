"""The ``folder`` dataset: any image folder train/<class>/*, test/<class>/*, or a tarball of one."""

from __future__ import annotations

import io
import shutil
import tarfile
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from accelat_train.data import DEFAULT_VAL_FRACTION, DeviceLoader, folder, load_splits
from accelat_train.data.folder import read_image_folder
from accelat_train.models import NormalizedModel, build_model

CLASSES = ("zebra", "ant", "moth")  # written unsorted: labels follow the sorted names


def write_folder(root, *, size=(20, 20), mode="RGB", train=4, test=2, seed=0, classes=CLASSES):
    """PNG (lossless) images root/{train,test}/<class>/<i>.png; returns {(split, class): [pixels]}
    as decoded (H x W x 3, or H x W for mode L)."""
    rng = np.random.default_rng(seed)
    channels = () if mode == "L" else (3,)
    written = {}
    for split, count in (("train", train), ("test", test)):
        for name in classes:
            (root / split / name).mkdir(parents=True, exist_ok=True)
            images = [
                rng.integers(0, 256, (size[1], size[0], *channels), dtype=np.uint8)
                for _ in range(count)
            ]
            for i, pixels in enumerate(images):
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")
            written[split, name] = images
    return written


def rows(x: np.ndarray) -> list[bytes]:
    return sorted(image.tobytes() for image in x)


def test_reader_sorts_classes_and_keeps_exact_pixels_in_label_then_path_order(tmp_path):
    written = write_folder(tmp_path / "f", size=(24, 20))
    train, test, classes = read_image_folder(tmp_path / "f", cache_dir=tmp_path / "cache")
    assert classes == ("ant", "moth", "zebra")
    assert train.x.shape == (12, 20, 24, 3) and train.x.dtype == np.uint8
    np.testing.assert_array_equal(train.y, np.repeat([0, 1, 2], 4))
    np.testing.assert_array_equal(test.y, np.repeat([0, 1, 2], 2))
    expected = np.stack([p for c in classes for p in written["test", c]])
    np.testing.assert_array_equal(test.x, expected)
    np.testing.assert_array_equal(train.x[4:8], np.stack(written["train", "moth"]))


def test_folder_splits_hold_out_a_tenth_of_train_stratified_and_augment_from_16_px(tmp_path):
    write_folder(tmp_path / "big", train=10, test=1)
    splits = load_splits("folder", tmp_path / "big", seed=0, cache_dir=tmp_path / "cache")
    assert splits.name == "folder" and splits.classes == ("ant", "moth", "zebra")
    assert len(splits.val) == round(DEFAULT_VAL_FRACTION * 30) == 3
    assert np.array_equal(np.bincount(splits.val.y), [1, 1, 1])
    assert len(splits.train) == 27 and len(splits.test) == 3
    assert splits.augment
    write_folder(tmp_path / "small", size=(12, 12))
    small = load_splits("folder", tmp_path / "small", val_size=0, cache_dir=tmp_path / "cache")
    assert not small.augment  # 12 px < 16 px


def test_grey_images_stay_one_channel_unless_any_image_has_colour(tmp_path):
    written = write_folder(tmp_path / "grey", mode="L")
    train, test, _ = read_image_folder(tmp_path / "grey", cache_dir=tmp_path / "cache")
    assert train.x.shape == (12, 20, 20, 1) and test.x.shape == (6, 20, 20, 1)
    np.testing.assert_array_equal(test.x[0, ..., 0], written["test", "ant"][0])
    # One RGB image makes the whole dataset RGB; grey images repeat their value in R, G and B.
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "grey/train/ant/rgb.png")
    train, test, _ = read_image_folder(tmp_path / "grey", cache_dir=tmp_path / "cache")
    assert train.x.shape == (13, 20, 20, 3) and test.x.shape == (6, 20, 20, 3)
    np.testing.assert_array_equal(test.x[0], np.repeat(written["test", "ant"][0][..., None], 3, 2))


def test_images_of_two_sizes_are_refused_naming_a_file_and_both_sizes(tmp_path):
    write_folder(tmp_path / "f", size=(20, 20))
    Image.new("RGB", (32, 24)).save(tmp_path / "f/test/moth/odd.png")
    with pytest.raises(
        ValueError, match=r"test/moth/odd\.png is 32x24 pixels but .*\.png is 20x20"
    ):
        load_splits("folder", tmp_path / "f", cache_dir=tmp_path / "cache")


def test_tar_gz_reads_like_the_folder_and_is_cached(tmp_path, monkeypatch):
    write_folder(tmp_path / "f")
    archive = tmp_path / "mine.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "f", arcname="mine")  # the two folders one level down
    cache = tmp_path / "cache"
    from_tar = load_splits("folder", archive, val_size=2, cache_dir=cache)
    from_dir = load_splits("folder", tmp_path / "f", val_size=2, cache_dir=cache)
    for a, b in ((from_tar.train, from_dir.train), (from_tar.test, from_dir.test)):
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y, b.y)
    assert from_tar.classes == from_dir.classes and len(list(cache.glob("folder-*.npz"))) == 2

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(folder, "decode_images", no_decoding)
    again = load_splits("folder", archive, val_size=2, cache_dir=cache)
    np.testing.assert_array_equal(again.train.x, from_tar.train.x)


def test_jpeg_and_palette_images_decode_to_rgb(tmp_path):
    write_folder(tmp_path / "f", size=(16, 16))
    Image.new("P", (16, 16), 7).save(tmp_path / "f/train/ant/palette.png")
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buffer, "JPEG")
    (tmp_path / "f/test/ant/photo.jpg").write_bytes(buffer.getvalue())
    train, test, _ = read_image_folder(tmp_path / "f", cache_dir=tmp_path / "cache")
    assert train.x.shape == (13, 16, 16, 3) and test.x.shape == (7, 16, 16, 3)
    assert np.abs(test.x[2].astype(int) - (200, 10, 10)).max() < 8  # ant's third: photo.jpg


def test_a_folder_dataset_trains_a_model_end_to_end(tmp_path):
    write_folder(tmp_path / "f", mode="L", size=(16, 16))
    splits = load_splits("folder", tmp_path / "f", val_size=0, cache_dir=tmp_path / "cache")
    net = build_model("resnet20", len(splits.classes), in_channels=1, image_size=16)
    model = NormalizedModel(net, splits.mean, splits.std)
    x, y = next(DeviceLoader(splits.train, 6, augment=splits.augment).epoch(0))
    assert x.shape == (6, 1, 16, 16)
    torch.nn.functional.cross_entropy(model(x), y).backward()


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("none", r"dataset 'folder' needs data_dir: expected a directory holding train/<class>/"),
        ("missing", r"dataset 'folder': data_dir '.*nowhere' does not exist"),
        ("no_test", r"dataset 'folder': '.*f' holds no train/ and test/"),
        ("a_file", r"dataset 'folder': '.*notes\.txt' is not a directory or an archive"),
        ("one_class", r"must hold images of 2 or more classes .* found 4 train images in 1 class"),
        ("stray_test_class", r"test classes without train images: \['wasp'\]"),
        ("not_an_image", r"train/ant/readme\.png is not a readable image"),
        ("sixteen_bit", r"train/ant/deep\.png has I;16 pixels .* convert it to 8 bits"),
        ("broken_tar", r"archive '.*broken\.tar\.gz' is truncated or damaged"),
    ],
)
def test_a_missing_or_malformed_folder_is_refused_naming_it(tmp_path, layout, message):
    root = tmp_path / "f"
    classes = ("ant",) if layout == "one_class" else CLASSES
    write_folder(root, classes=classes, size=(16, 16))
    data_dir = {"none": None, "missing": tmp_path / "nowhere"}.get(layout, root)
    if layout == "no_test":
        shutil.rmtree(root / "test")
    elif layout == "a_file":
        data_dir = tmp_path / "notes.txt"
        data_dir.write_text("not images")
    elif layout == "stray_test_class":
        (root / "test" / "wasp").mkdir()
        Image.new("RGB", (16, 16)).save(root / "test" / "wasp" / "0.png")
    elif layout == "not_an_image":
        (root / "train" / "ant" / "readme.png").write_text("text, not pixels")
    elif layout == "sixteen_bit":
        Image.fromarray(np.full((16, 16), 4000, np.uint16)).save(root / "train/ant/deep.png")
    elif layout == "broken_tar":
        data_dir = tmp_path / "broken.tar.gz"
        with tarfile.open(data_dir, "w:gz") as tar:
            tar.add(root, arcname="f")
        data_dir.write_bytes(data_dir.read_bytes()[:-300])
    with pytest.raises(ValueError, match=message):
        load_splits("folder", data_dir, cache_dir=tmp_path / "cache")


def _cut_after_a_member(tar_bytes: bytes, keep: int) -> bytes:
    """A gzip stream of ``tar_bytes`` cut where its first ``keep`` members end: it decodes to
    whole members, with neither the tar's end blocks nor gzip's end-of-stream marker."""
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        member = tar.getmembers()[keep - 1]
    end = member.offset_data + -(-member.size // 512) * 512
    gz = zlib.compressobj(wbits=31)  # gzip framing
    return gz.compress(tar_bytes[:end]) + gz.flush(zlib.Z_FULL_FLUSH)


def test_an_archive_cut_after_a_whole_member_is_named_truncated_not_read_short(tmp_path):
    write_folder(tmp_path / "f", train=6, test=2)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(tmp_path / "f", arcname="f")
    with tarfile.open(fileobj=io.BytesIO(buffer.getvalue())) as whole:
        members = len(whole.getmembers())
    archive = tmp_path / "cut.tar.gz"  # every class still there, the last two images gone
    archive.write_bytes(_cut_after_a_member(buffer.getvalue(), keep=members - 2))
    with tarfile.open(archive, "r|gz") as tar:  # what tarfile alone makes of it: no error
        assert sum(m.isfile() for m in tar) == 3 * (6 + 2) - 2
    with pytest.raises(ValueError, match=rf"archive '{archive}' is truncated or damaged"):
        read_image_folder(archive, cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.npz"))  # nothing short was cached


def test_a_whole_archive_with_trailing_zeros_still_reads(tmp_path):
    write_folder(tmp_path / "f")
    archive = tmp_path / "whole.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "f", arcname="f")
    train, test, classes = read_image_folder(archive, cache_dir=tmp_path / "cache")
    assert (len(train), len(test), classes) == (12, 6, tuple(sorted(CLASSES)))
