#!/usr/bin/python3
"""make-corpus.py - writes the fuzzing harnesses' seed corpora (fuzz/corpus/<target>/).

Small, valid examples of every format and its variants, so that fuzzing starts
from inputs that reach deep into each parser: PNG of every color type and bit
depth (interlaced too), JPEG baseline, progressive, arithmetic-coded and with
restart markers; .npy of several dtypes and byte orders; IDX plain and gzipped; checkpoints and run directories written by the
program itself (tiny networks, one training step). Needs python3 with numpy and
the built program: fuzz/make-corpus.py build/diffusion
"""
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# ------------------------------------------------------------------ images

def png_chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def png(w, h, color, depth, rows, palette=None, trns=None, interlace=0, text=None):
    """rows: the raw scanlines (bytes each, without the filter byte)."""
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace))
    if palette:
        out += png_chunk(b"PLTE", palette)
    if trns:
        out += png_chunk(b"tRNS", trns)
    if text:
        out += png_chunk(b"tEXt", text)
    raw = b"".join(bytes([i % 5]) + r for i, r in enumerate(rows))  # filters 0..4 on alternate rows
    out += png_chunk(b"IDAT", zlib.compress(raw, 9))
    return out + png_chunk(b"IEND", b"")


def images():
    w, h = 5, 4
    g8 = [bytes((x * 40 + y * 7) & 255 for x in range(w)) for y in range(h)]
    put("image", "gray8.png", png(w, h, 0, 8, g8))
    put("image", "gray1.png", png(w, h, 0, 1, [bytes([0b10110000]) for _ in range(h)]))
    put("image", "gray16.png", png(w, h, 0, 16, [bytes(b for x in range(w) for b in (x * 50, y)) for y in range(h)]))
    rgb = [bytes((x * 30 + c * 60 + y) & 255 for x in range(w) for c in range(3)) for y in range(h)]
    put("image", "rgb8.png", png(w, h, 2, 8, rgb, text=b"Comment\x00seed"))
    rgba = [bytes((x * 30 + c * 60 + y) & 255 for x in range(w) for c in range(4)) for y in range(h)]
    put("image", "rgba8.png", png(w, h, 6, 8, rgba))
    ga = [bytes((x * 30 + c * 90) & 255 for x in range(w) for c in range(2)) for y in range(h)]
    put("image", "graya8.png", png(w, h, 4, 8, ga))
    pal = bytes([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    put("image", "palette4.png", png(w, h, 3, 4, [bytes([0x12, 0x30, 0x10]) for _ in range(h)], palette=pal, trns=b"\x80"))
    put("image", "interlaced.png", png(8, 8, 0, 8, [bytes(range(y, y + 8)) for y in range(8)], interlace=1))
    # JPEG variants through libjpeg-turbo itself: baseline, progressive,
    # arithmetic-coded, with restart markers, gray and 4:2:0 color
    tmp = tempfile.mkdtemp()
    src = os.path.join(tmp, "w.c")
    with open(src, "w") as f:
        f.write(JPEG_WRITER)
    subprocess.run(["cc", "-O1", "-o", os.path.join(tmp, "w"), src, "-ljpeg"], check=True)
    for name, args in (("baseline-gray.jpg", "1 0 0 0"), ("baseline-rgb.jpg", "3 0 0 0"),
                       ("progressive-rgb.jpg", "3 1 0 0"), ("progressive-gray.jpg", "1 1 0 0"),
                       ("arithmetic-rgb.jpg", "3 0 1 0"), ("restarts-rgb.jpg", "3 0 0 1")):
        path = os.path.join(tmp, name)
        subprocess.run([os.path.join(tmp, "w"), path] + args.split(), check=True)
        put("image", name, open(path, "rb").read())
    shutil.rmtree(tmp)


JPEG_WRITER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <jpeglib.h>
int main(int argc, char **argv) {
    int c = atoi(argv[2]), w = 19, h = 13;
    struct jpeg_compress_struct ci; struct jpeg_error_mgr e;
    ci.err = jpeg_std_error(&e); jpeg_create_compress(&ci);
    FILE *f = fopen(argv[1], "wb"); jpeg_stdio_dest(&ci, f);
    ci.image_width = w; ci.image_height = h; ci.input_components = c;
    ci.in_color_space = c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&ci); jpeg_set_quality(&ci, 85, TRUE);
    if (atoi(argv[3])) jpeg_simple_progression(&ci);
    ci.arith_code = atoi(argv[4]);
    if (atoi(argv[5])) ci.restart_in_rows = 1;
    jpeg_start_compress(&ci, TRUE);
    unsigned char row[19 * 3];
    while (ci.next_scanline < ci.image_height) {
        for (int i = 0; i < w * c; i++) row[i] = (unsigned char)(i * 11 + ci.next_scanline * 17);
        JSAMPROW r = row; jpeg_write_scanlines(&ci, &r, 1);
    }
    jpeg_finish_compress(&ci); fclose(f); jpeg_destroy_compress(&ci); return 0;
}
"""

# ------------------------------------------------------------------ arrays

def npy():
    def save(name, a, fortran=False):
        tmp = tempfile.mktemp(suffix=".npy")
        np.save(tmp, np.asfortranarray(a) if fortran else a)
        put("npy", name, open(tmp, "rb").read())
        os.remove(tmp)
    save("f32-vectors.npy", np.arange(6, dtype="<f4").reshape(3, 2))
    save("u8-images.npy", np.arange(32, dtype=np.uint8).reshape(2, 1, 4, 4))
    save("u8-hw.npy", np.arange(18, dtype=np.uint8).reshape(2, 3, 3))
    save("f64-be.npy", np.linspace(-1, 1, 8, dtype=">f8").reshape(4, 2))
    save("i16.npy", np.arange(4, dtype="<i2").reshape(2, 2))
    save("f16.npy", np.ones((2, 3), dtype="<f2"))
    save("fortran.npy", np.arange(6, dtype="<f4").reshape(2, 3), fortran=True)
    save("scalar.npy", np.array(3.0, dtype="<f4"))
    tmp = tempfile.mktemp(suffix=".npy")  # format version 2 (4-byte header length)
    np.lib.format.write_array(open(tmp, "wb"), np.zeros((2, 2), "<f4"), version=(2, 0))
    put("npy", "v2.npy", open(tmp, "rb").read())
    os.remove(tmp)


def idx():
    img = struct.pack(">BBBBIII", 0, 0, 8, 3, 3, 2, 2) + bytes(range(12))
    lab = struct.pack(">BBBBI", 0, 0, 8, 1, 3) + bytes([0, 1, 2])
    put("idx", "images-idx3-ubyte", img)
    put("idx", "labels-idx1-ubyte", lab)
    put("idx", "images-idx3-ubyte.gz", gzip.compress(img, mtime=0))
    put("idx", "labels-idx1-ubyte.gz", gzip.compress(lab, mtime=0))
    put("idx", "vectors-idx2", struct.pack(">BBBBII", 0, 0, 8, 2, 2, 3) + bytes(range(6)))


def text_formats():
    put("csv", "plain.csv", "\x02" "1,2,3\n4,5,6\n")
    put("csv", "header-labels.csv", "\x00" "x, y ,label\r\n1.5,-2,3\r\n\r\n4e-1,5,0\n")
    put("csv", "quoted.csv", "\x01" '"a","b"\n1,2\n# comment\n3,4')
    put("betas", "linear.txt", "# betas\n0.0001\n0.0005, 0.001,\n0.02\n")
    put("betas", "one-line.txt", "1e-4,2e-4,3e-4")
    put("mixture", "stds.json", json.dumps({"weights": [0.7, 0.3], "means": [[-2, 0], [2, 0]], "stds": [0.5, 0.5]}))
    put("mixture", "covs.json", json.dumps({"weights": [1], "means": [[0, 1]], "covs": [[[1, 0.5], [0.5, 2]]]}))
    put("config", "unet.json", '{"kind":"unet","in_channels":1,"resolution":28,"channels":64,"ch_mult":[1,2,2],'
        '"num_res_blocks":2,"attn_resolutions":[7],"heads":1,"groups":32,"norm_eps":1e-06,"dropout":0.1,"num_classes":0}')
    put("config", "mlp.json", '{"kind":"mlp","dim":2,"width":128,"depth":3,"dropout":0.1,"num_classes":0}')
    put("config", "classifier.json", '{"kind":"classifier","in_channels":1,"height":28,"width":28,"channels":32,'
        '"groups":8,"feature_dim":128,"num_classes":10}')
    put("config", "classifier-flatten.json", '{"kind":"classifier","in_channels":1,"height":28,"width":28,"channels":32,'
        '"groups":8,"feature_dim":128,"num_classes":10,"flatten":1,"dropout":0.3,"extra_convs":1}')
    put("config", "process-discrete.json", '{"type":"discrete","schedule":"linear","T":3,"beta_start":0.0001,'
        '"beta_end":0.02,"cosine_s":0.008,"max_beta":0.999,"betas":[0.0001,0.01,0.02]}')
    put("config", "process-continuous.json", '{"type":"continuous","sde":"ve","beta_min":0.1,"beta_max":20,'
        '"sigma_min":0.01,"sigma_max":50,"t_min":1e-05,"time_scale":1000}')
    put("config", "autoencoder.json", '{"kind":"autoencoder","in_channels":1,"resolution":28,"channels":32,'
        '"ch_mult":[1,2,2],"num_res_blocks":1,"latent_channels":4,"groups":8,"norm_eps":1e-06,"dropout":0}')
    put("config", "objective.json", '{"prediction":"v","loss":"huber","huber_delta":1,"weighting":"min-snr","min_snr_gamma":5}')


# ------------------------------------------------------------------ checkpoints and runs

def latent_runs(program, tmp, base):
    """An autoencoder (4x4 images -> 2x2x2 latents) and a latent model of it."""
    npy = "npy:" + os.path.join(CORPUS, "npy", "u8-images.npy")
    ae, lat = os.path.join(tmp, "ae"), os.path.join(tmp, "latent")
    subprocess.run([program, "train-autoencoder", "--steps", "1", "--batch", "2", "--samples", "0", "--quiet",
                    "--data", npy, "--channels", "4", "--ch-mult", "1,2", "--groups", "2", "--latent-channels", "2",
                    "--out", ae], check=True)
    subprocess.run([program] + base + ["--data", npy, "--autoencoder", os.path.join(ae, "model.safetensors"),
                    "--channels", "4", "--res-blocks", "1", "--groups", "2", "--attn", "", "--batch", "2",
                    "--T", "4", "--out", lat], check=True)
    put("checkpoint", "autoencoder.safetensors", open(os.path.join(ae, "model.safetensors"), "rb").read())
    put("checkpoint", "latent.safetensors", open(os.path.join(lat, "model.safetensors"), "rb").read())
    put("run", "autoencoder.json", open(os.path.join(ae, "config.json"), "rb").read())
    put("run", "latent.json", open(os.path.join(lat, "config.json"), "rb").read())


def fewstep_runs(program, tmp, base, teacher):
    """A consistency model trained (ct) and distilled (cd) from `teacher`, and a
    2-rectified flow on its pairs (reflow)."""
    small = ["--steps", "1", "--batch", "8", "--samples", "0", "--quiet"]
    cases = {
        "mlp-ct": base + ["--data", "toy:moons", "--width", "8", "--depth", "1", "--T", "10", "--objective", "ct"],
        "mlp-cd": ["distill", "--teacher", teacher, "--method", "cd", "--data", "toy:moons", "--n", "64"] + small,
        "mlp-reflow": ["distill", "--teacher", teacher, "--method", "reflow", "--pairs", "64",
                       "--pair-steps", "2"] + small,
    }
    for name, args in cases.items():
        out = os.path.join(tmp, name)
        subprocess.run([program] + args + ["--out", out], check=True)
        put("checkpoint", name + ".safetensors", open(os.path.join(out, "model.safetensors"), "rb").read())
        put("run", name + ".json", open(os.path.join(out, "config.json"), "rb").read())


def runs(program):
    tmp = tempfile.mkdtemp()
    base = ["train", "--steps", "1", "--batch", "8", "--samples", "0", "--quiet", "--n", "64"]
    cases = {
        "mlp-ddpm": ["--data", "toy:moons", "--width", "8", "--depth", "1", "--T", "10"],
        "mlp-ve-score": ["--data", "toy:moons", "--width", "8", "--depth", "1", "--sde", "ve", "--prediction", "score"],
        "mlp-flow": ["--data", "toy:8gaussians", "--width", "4", "--depth", "1", "--sde", "flow"],
        "unet": ["--data", "npy:" + os.path.join(CORPUS, "npy", "u8-images.npy"), "--channels", "4",
                 "--ch-mult", "1,1", "--res-blocks", "1", "--groups", "2", "--batch", "2", "--T", "4"],
    }
    for name, args in cases.items():
        out = os.path.join(tmp, name)
        subprocess.run([program] + base + args + ["--out", out], check=True)
        put("checkpoint", name + ".safetensors", open(os.path.join(out, "model.safetensors"), "rb").read())
        put("run", name + ".json", open(os.path.join(out, "config.json"), "rb").read())
    latent_runs(program, tmp, base)
    fewstep_runs(program, tmp, base, os.path.join(tmp, "mlp-ddpm", "model.safetensors"))
    put("safetensors", "mlp.safetensors", open(os.path.join(CORPUS, "checkpoint", "mlp-ddpm.safetensors"), "rb").read())
    shutil.rmtree(tmp)
    # safetensors variants: other dtypes, a scalar, an empty tensor, metadata
    def st(tensors, meta=None):
        header, blob = {}, b""
        for name, (dtype, shape, data) in tensors.items():
            header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
            blob += data
        if meta:
            header["__metadata__"] = meta
        h = json.dumps(header).encode()
        h += b" " * (-len(h) % 8)
        return struct.pack("<Q", len(h)) + h + blob
    put("safetensors", "dtypes.safetensors", st({
        "a": ("F16", [2], np.ones(2, "<f2").tobytes()), "b": ("BF16", [1, 2], b"\x80\x3f\x00\x40"),
        "c": ("F64", [], np.ones(1, "<f8").tobytes()), "d": ("I64", [0, 3], b""), "e": ("U8", [3], b"\x01\x02\x03"),
        "f": ("BOOL", [2], b"\x00\x01"), "g": ("I32", [1], b"\x07\x00\x00\x00")}, {"format": "pt"}))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: fuzz/make-corpus.py PATH/TO/diffusion")
    images()
    npy()
    idx()
    text_formats()
    runs(os.path.abspath(sys.argv[1]))
    for t in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, t))
        print(f"{t:12s} {len(files):3d} files, {sum(os.path.getsize(os.path.join(CORPUS, t, f)) for f in files):7d} bytes")
