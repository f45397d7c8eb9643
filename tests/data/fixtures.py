"""Small image–caption sources with every kind of damage, made on the fly."""

import csv
import io
import struct
import tarfile
import zlib

import numpy as np
from PIL import Image


def encode(image, format="JPEG", **options):
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def write_sentence_piece_model(path, texts, vocabulary_size=800):
    """A unigram model laid out as SigLIP's (<pad> 0, </s> 1, <unk> 2, no <s>); its path."""
    import sentencepiece

    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_prefix=str(path), vocab_size=vocabulary_size,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        character_coverage=0.98, minloglevel=2)
    return f"{path}.model"


def photo(seed, size=(48, 40)):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


GOOD_IMAGES = {
    "good0.jpg": lambda: encode(photo(0)),
    "good1.png": lambda: encode(photo(1), "PNG"),
    "good2.jpg": lambda: encode(photo(2, (30, 70))),
    "cmyk.jpg": lambda: encode(photo(3).convert("CMYK")),
    "deep.png": lambda: encode(Image.fromarray(
        np.random.default_rng(4).integers(0, 65535, (40, 40)).astype(np.uint16)), "PNG"),
    "tiny.png": lambda: encode(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"),
    "huge.jpg": lambda: encode(Image.new("RGB", (8000, 8000), (20, 120, 220)), quality=50),
    "scan.tiff": lambda: encode(photo(5), "TIFF"),
}


def png_chunk(kind, data):
    """One PNG chunk: length, type, data, CRC of type and data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width, height):
    """A 1×1 PNG whose IHDR (CRC recomputed) claims `width × height`: no pixel data for it."""
    data = encode(Image.new("RGB", (1, 1)), "PNG")
    ihdr = data[8 + 8 : 8 + 8 + 13]  # after the signature and the chunk's length and type
    return data[:8] + png_chunk(b"IHDR", struct.pack(">II", width, height) + ihdr[8:]) + data[33:]


def png_deflate_bomb(width, height):
    """A valid 1-bit black PNG of `width × height`, ~1,000 pixels per byte of file.

    Small, an ordinary image; at 12,000 × 12,000 (18 kB) a decompression bomb.
    """
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte, then the packed pixels
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, grey
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", pixels)
            + png_chunk(b"IEND", b""))


def jpeg_declaring(width, height):
    """An 8×8 JPEG whose SOF0 header claims `width × height` (at most 65,535 each)."""
    data = bytearray(encode(Image.new("RGB", (8, 8))))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def bmp_declaring(width, height):
    """A 1×1 BMP whose header claims `width × height`."""
    data = bytearray(encode(Image.new("RGB", (1, 1)), "BMP"))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def gif_of_frames(count, width, height):
    """A GIF of `count` alternating black and white frames: TensorFlow decodes every one."""
    frames = [Image.new("P", (width, height), k % 2) for k in range(count)]
    for frame in frames:  # alternating: PIL merges identical neighbours
        frame.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], disposal=1)


BAD_IMAGES = {
    "truncated.jpg": lambda: encode(photo(6))[:300],
    "random.jpg": lambda: np.random.default_rng(7).bytes(500),
    "empty.png": lambda: b"",
}


def write_folder_source(root):
    """A folder of images and a CSV; returns (csv path, expected counts)."""
    rows = []
    for name, make in {**GOOD_IMAGES, **BAD_IMAGES}.items():
        (root / name).write_bytes(make())
        rows.append((name, f"a picture called {name.split('.')[0]}"))
    (root / "blank.jpg").write_bytes(encode(photo(8)))
    rows.append(("blank.jpg", "   "))  # empty once cleaned
    (root / "wordy.jpg").write_bytes(encode(photo(9)))
    rows.append(("wordy.jpg", "long " * 2000))  # 10,000 characters
    rows.append(("good0.jpg", "a second caption &amp; more"))  # two captions
    rows.append(("missing.jpg", "no such file"))
    rows.append(("../escape.jpg", "outside the folder"))
    table = root / "captions.csv"
    with open(table, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["filepath", "caption"])
        writer.writerows(rows)
    expected = {
        "written": len(GOOD_IMAGES) + 1,  # + wordy.jpg (cut, not skipped)
        "skipped": {
            "unreadable image": 2,  # truncated, random bytes
            "empty image file": 1,
            "empty caption": 1,
            "image file missing": 1,
            "path outside the image folder": 1,
        },
    }
    return table, expected


def write_tar_source(path):
    """A WebDataset tar with good pairs, a non-UTF-8 caption and a `../` member."""
    with tarfile.open(path, "w") as archive:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))

        for i in range(3):
            add(f"{i:04d}.jpg", encode(photo(10 + i)))
            add(f"{i:04d}.txt", f"tar caption {i}".encode())
        add("0003.jpg", encode(photo(13)))
        add("0003.txt", b"caf\xe9 latin-1")  # invalid UTF-8
        add("0004.jpg", encode(photo(14)))  # no caption
        add("../evil.txt", b"should never be read")
    return {"written": 3, "skipped": {"caption is not UTF-8": 1,
                                      "no caption in the sample": 1,
                                      "path outside the archive": 1}}
