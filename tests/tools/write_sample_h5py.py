"""Write the h5py sample file that the HDF5 tools comparison reads.

The same content is written natively (plain ``h5py.File``) or through an
h5pyvol connector (``h5pyvol.File``), so that ``compare_tools.py`` can run
h5dump and h5ls on both and show what differs. The content covers what the
tools print: nested groups; integers and floats of several sizes and byte
orders; bool and enum; fixed and variable-length strings (ASCII and UTF-8);
nested compounds; arrays; opaque data; variable-length sequences; scalar and
null dataspaces; chunked, compressed, resizable datasets with fill values;
attributes of several types; soft, hard and external links; a committed
datatype; groups that track creation order.

usage: write_sample_h5py.py NAME [--connector SPEC]

NAME is the file name (a path natively; the connector's file name through
--connector, e.g. ``--connector 'passthru;root=/tmp/store'``). An external
link target, NAME with ``_ext`` before the suffix, is written next to it the
same way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import PurePosixPath

import h5py
import numpy as np

import h5pyvol
from h5pyvol.registry import ConnectorSpec


def external_name(name: str) -> str:
    """The external link target written next to NAME."""
    p = PurePosixPath(name)
    return str(p.with_name(p.stem + "_ext" + p.suffix))


def write_external(f: h5py.File) -> None:
    f.create_group("target").create_dataset("values", data=np.arange(4, dtype="<i2"))


def write_sample(f: h5py.File, ext_name: str) -> None:
    # Nested groups, one of them tracking creation order (links made out of name order).
    inner = f.create_group("nested/level1/level2")
    inner.attrs["depth"] = np.int32(3)
    # As the C sample makes it: HDF5's default creation properties, so its
    # (version 2) object header records times, which h5py's groups do not.
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_link_creation_order(h5py.h5p.CRT_ORDER_TRACKED | h5py.h5p.CRT_ORDER_INDEXED)
    gcpl.set_attr_creation_order(h5py.h5p.CRT_ORDER_TRACKED | h5py.h5p.CRT_ORDER_INDEXED)
    ordered = h5py.Group(h5py.h5g.create(f.id, b"ordered", gcpl=gcpl))
    for name in ("zeta", "alpha", "mid"):
        ordered.create_group(name)
    ordered.attrs.create("second", 2, dtype="<u1")
    ordered.attrs.create("first", 1, dtype="<u1")

    numbers = f.create_group("numbers")
    for code in (
        "<i1",
        "<u1",
        "<i2",
        ">i2",
        "<u2",
        "<i4",
        ">i4",
        "<u4",
        ">u4",
        "<i8",
        ">i8",
        "<u8",
        "<f4",
        ">f4",
        "<f8",
        ">f8",
    ):
        kind = np.dtype(code)
        name = f"{kind.kind}{kind.itemsize * 8}{'be' if code[0] == '>' else 'le'}"
        values = np.arange(6) if kind.kind == "u" else np.arange(-2, 4)
        numbers.create_dataset(name, data=values.astype(kind))
    numbers["f64le"][...] = [0.5, -1.25, 1e300, np.inf, -np.inf, np.nan]

    kinds = f.create_group("kinds")
    kinds.create_dataset("bool", data=np.array([True, False, True]))
    color = h5py.enum_dtype({"RED": 0, "GREEN": 1, "BLUE": 42}, basetype="u1")
    kinds.create_dataset("enum", data=np.array([0, 42, 1, 0], dtype="u1"), dtype=color)
    kinds.create_dataset("fixed_ascii", data=np.array([b"one", b"three", b""], dtype="S6"))
    utf8_fixed = h5py.string_dtype("utf-8", 8)
    kinds.create_dataset("fixed_utf8", data=np.array(["é".encode(), "ωx".encode()], dtype=utf8_fixed))
    kinds.create_dataset("vlen_ascii", data=[b"a", b"longer text", b""], dtype=h5py.string_dtype("ascii"))
    kinds.create_dataset("vlen_utf8", data=["α", "βγ δ", "plain"], dtype=h5py.string_dtype("utf-8"))
    inner_t = np.dtype([("x", "<f8"), ("y", ">i2")])
    nested_t = np.dtype([("id", "<u4"), ("pos", inner_t), ("tag", "S4"), ("vec", "<f4", (3,))])
    kinds.create_dataset(
        "compound", data=np.array([(1, (0.5, -3), b"ab", (1, 2, 3)), (2, (1.5, 7), b"wxyz", (4, 5, 6))], dtype=nested_t)
    )
    array_t = h5py.h5t.array_create(h5py.h5t.STD_I16LE, (2, 3))
    space = h5py.h5s.create_simple((2,))
    arr = h5py.h5d.create(kinds.id, b"array", array_t, space)
    arr.write(h5py.h5s.ALL, h5py.h5s.ALL, np.arange(12, dtype="<i2").reshape(2, 2, 3), mtype=array_t)
    kinds.create_dataset("opaque", data=np.frombuffer(bytes(range(12)), dtype="V4"))
    kinds.create_dataset(
        "vlen_int",
        data=[np.array([1, 2, 3], "<i4"), np.array([], "<i4"), np.array([9], "<i4")],
        dtype=h5py.vlen_dtype("<i4"),
    )
    kinds.create_dataset(
        "vlen_float", data=[np.array([0.5], "<f8"), np.array([1.5, 2.5], "<f8")], dtype=h5py.vlen_dtype("<f8")
    )

    spaces = f.create_group("spaces")
    spaces.create_dataset("scalar", data=np.float64(2.5))
    spaces.create_dataset("null", data=h5py.Empty("<i4"))
    spaces.create_dataset("scalar_str", data="one string", dtype=h5py.string_dtype())

    storage = f.create_group("storage")
    storage.create_dataset(
        "gzip_shuffle",
        data=np.arange(40, dtype="<i4").reshape(4, 10),
        chunks=(2, 5),
        compression="gzip",
        compression_opts=6,
        shuffle=True,
    )
    filled = storage.create_dataset("filled", shape=(3, 4), dtype="<f4", fillvalue=-1.5, chunks=(3, 2))
    filled[0, :2] = [1, 2]
    grow = storage.create_dataset(
        "resizable", shape=(2, 3), maxshape=(None, 3), chunks=(1, 3), dtype="<i8", fillvalue=-7
    )
    grow[...] = np.arange(6).reshape(2, 3)
    grow.resize((4, 3))
    storage.create_dataset("unwritten", shape=(5,), dtype="<u2", fillvalue=17)

    # Attributes of several types, on the root, a group and a dataset.
    f.attrs["title"] = "sample"
    f.attrs.create("ascii_fixed", np.bytes_(b"fixed"))
    f.attrs["scores"] = np.array([1.5, 2.5], dtype=">f4")
    numbers.attrs["count"] = np.int64(16)
    numbers.attrs["labels"] = np.array(["α", "b"], dtype=h5py.string_dtype())
    numbers.attrs.create("point", np.array((3, (1.0, 2)), dtype=np.dtype([("n", "<i4"), ("p", inner_t)])))
    ds = storage["gzip_shuffle"]
    ds.attrs["units"] = "m/s"
    ds.attrs.create("flag", True)
    ds.attrs.create("matrix", np.arange(6, dtype="<u2").reshape(2, 3))
    ds.attrs.create("ragged", [np.array([1, 2], "<i4"), np.array([3], "<i4")], dtype=h5py.vlen_dtype("<i4"))
    ds.attrs.create("empty", h5py.Empty("<f8"))

    # A committed datatype, used by a dataset and an attribute.
    f["point_t"] = np.dtype([("x", "<f4"), ("y", "<f4")])
    pts = f.create_dataset("points", data=np.array([(1, 2), (3, 4)], dtype=f["point_t"].dtype), dtype=f["point_t"])
    pts.attrs.create("origin", np.array((0, 0), dtype=f["point_t"].dtype), dtype=f["point_t"])

    # Links.
    f["links/hard"] = numbers["i32le"]
    f["links/soft"] = h5py.SoftLink("/numbers/f64le")
    f["links/dangling"] = h5py.SoftLink("/no/such/object")
    f["links/external"] = h5py.ExternalLink(PurePosixPath(ext_name).name, "/target")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="The file is written natively unless --connector is given."
    )
    parser.add_argument("name", help="the file to write (the connector's file name with --connector)")
    parser.add_argument("--connector", metavar="SPEC", help="an h5pyvol connector string, e.g. 'passthru;root=DIR'")
    args = parser.parse_args(argv)

    def open_new(name: str) -> h5py.File:
        if args.connector is None:
            return h5py.File(name, "w")
        spec = ConnectorSpec.parse(args.connector)
        f = h5pyvol.File(name, "w", spec.name, **dict(spec.options))
        if h5pyvol.connector_name(f.id) != "h5pyvol":
            raise SystemExit(f"{name}: HDF5 did not use h5pyvol")
        return f

    ext = external_name(args.name)
    with open_new(ext) as f:
        write_external(f)
    with open_new(args.name) as f:
        write_sample(f, ext)
    return 0


if __name__ == "__main__":
    sys.exit(main())
