/*
 * tools_sample.c: writes the C sample file that the HDF5 tools comparison
 * (tests/tools/compare_tools.py) reads with h5dump and h5ls.
 *
 * usage: tools_sample NAME CONNECTOR
 *
 * Writes NAME, and NAME with "_ext" before ".h5" as the target of its
 * external link, with whatever connector HDF5_VOL_CONNECTOR selects; exits 1
 * unless that connector is CONNECTOR ("native" or "h5pyvol"): HDF5 silently
 * falls back to its native connector when a plugin does not load. The content
 * covers what the tools print: nested groups; integers and floats of several
 * sizes and byte orders; bool and enum; fixed and variable-length strings
 * (ASCII and UTF-8); nested compounds; arrays; opaque data; variable-length
 * sequences; scalar and null dataspaces; chunked, compressed, resizable
 * datasets with fill values; attributes of several types; soft, hard and
 * external links; a committed datatype; groups that track creation order.
 */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check(int ok, const char *what, int line)
{
    if (!ok) {
        fprintf(stderr, "FAIL: %s (line %d)\n", what, line);
        H5Eprint2(H5E_DEFAULT, stderr);
        exit(1);
    }
}
#define CHECK(cond, what) check((cond), (what), __LINE__)

/* A dataset of `type` and `space` at `loc`/`name`, written from `buf` (memory type `mtype`) unless NULL. */
static hid_t dataset(hid_t loc, const char *name, hid_t type, hid_t space, hid_t dcpl, hid_t mtype, const void *buf)
{
    hid_t d = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    CHECK(d >= 0, name);
    if (buf)
        CHECK(H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0, name);
    return d;
}

static void put(hid_t loc, const char *name, hid_t type, hid_t space, hid_t mtype, const void *buf)
{
    CHECK(H5Dclose(dataset(loc, name, type, space, H5P_DEFAULT, mtype, buf)) >= 0, name);
}

static void attribute(hid_t obj, const char *name, hid_t type, hid_t space, hid_t mtype, const void *buf)
{
    hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(a >= 0, name);
    if (buf)
        CHECK(H5Awrite(a, mtype, buf) >= 0, name);
    CHECK(H5Aclose(a) >= 0, name);
}

static hid_t string_type(size_t size, H5T_cset_t cset)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    CHECK(H5Tset_size(t, size) >= 0 && H5Tset_cset(t, cset) >= 0, "string type");
    return t;
}

static hid_t simple(int rank, const hsize_t *dims) { return H5Screate_simple(rank, dims, NULL); }

static void write_numbers(hid_t file)
{
    static const struct {
        const char *name;
        hid_t      *type;
    } ints[] = {
        {"i8le", &H5T_STD_I8LE_g},   {"u8le", &H5T_STD_U8LE_g},   {"i16le", &H5T_STD_I16LE_g},
        {"i16be", &H5T_STD_I16BE_g}, {"u16le", &H5T_STD_U16LE_g}, {"i32le", &H5T_STD_I32LE_g},
        {"i32be", &H5T_STD_I32BE_g}, {"u32le", &H5T_STD_U32LE_g}, {"u32be", &H5T_STD_U32BE_g},
        {"i64le", &H5T_STD_I64LE_g}, {"i64be", &H5T_STD_I64BE_g}, {"u64le", &H5T_STD_U64LE_g},
    };
    static const struct {
        const char *name;
        hid_t      *type;
    } floats[] = {
        {"f32le", &H5T_IEEE_F32LE_g}, {"f32be", &H5T_IEEE_F32BE_g},
        {"f64le", &H5T_IEEE_F64LE_g}, {"f64be", &H5T_IEEE_F64BE_g},
    };
    long long signed_values[6] = {-2, -1, 0, 1, 2, 3}, unsigned_values[6] = {0, 1, 2, 3, 4, 5};
    double    reals[6] = {0.5, -1.25, 1e30, 3.0, -4.5, 1.0 / 3.0};
    hsize_t   six      = 6;
    hid_t     g = H5Gcreate2(file, "numbers", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), space = simple(1, &six);

    CHECK(g >= 0, "numbers");
    H5open(); /* the H5T_*_g globals are set once the library is initialized */
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        put(g, ints[i].name, *ints[i].type, space, H5T_NATIVE_LLONG,
            ints[i].name[0] == 'u' ? unsigned_values : signed_values);
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++)
        put(g, floats[i].name, *floats[i].type, space, H5T_NATIVE_DOUBLE, reals);

    {
        long long   count     = 16;
        const char *labels[2] = {"\xce\xb1", "b"};
        hsize_t     two       = 2;
        hid_t       scalar = H5Screate(H5S_SCALAR), pair = simple(1, &two), vstr = string_type(H5T_VARIABLE, H5T_CSET_UTF8);
        attribute(g, "count", H5T_STD_I64LE, scalar, H5T_NATIVE_LLONG, &count);
        attribute(g, "labels", vstr, pair, vstr, labels);
        H5Tclose(vstr);
        H5Sclose(pair);
        H5Sclose(scalar);
    }
    H5Sclose(space);
    H5Gclose(g);
}

struct inner {
    double x;
    short  y;
};
struct nested {
    unsigned     id;
    struct inner pos;
    char         tag[4];
    float        vec[3];
};

static void write_kinds(hid_t file)
{
    hid_t   g = H5Gcreate2(file, "kinds", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t two = 2, three = 3, four = 4;
    hid_t   s2 = simple(1, &two), s3 = simple(1, &three), s4 = simple(1, &four);
    CHECK(g >= 0, "kinds");

    { /* bool as h5py stores it: an 8-bit enum FALSE/TRUE */
        signed char   v, flags[3] = {1, 0, 1};
        hid_t         t = H5Tenum_create(H5T_NATIVE_SCHAR);
        unsigned char colors[4] = {0, 42, 1, 0};
        v = 0, H5Tenum_insert(t, "FALSE", &v);
        v = 1, H5Tenum_insert(t, "TRUE", &v);
        put(g, "bool", t, s3, t, flags);
        H5Tclose(t);
        t = H5Tenum_create(H5T_STD_U8LE);
        unsigned char c;
        c = 0, H5Tenum_insert(t, "RED", &c);
        c = 1, H5Tenum_insert(t, "GREEN", &c);
        c = 42, H5Tenum_insert(t, "BLUE", &c);
        put(g, "enum", t, s4, t, colors);
        H5Tclose(t);
    }
    { /* strings: fixed and variable length, ASCII and UTF-8 */
        char        fixed[3][6] = {"one", "three", ""};
        char        fixed_utf8[2][8] = {"\xc3\xa9", "\xcf\x89x"};
        const char *vascii[3] = {"a", "longer text", ""}, *vutf8[3] = {"\xce\xb1", "\xce\xb2\xce\xb3 \xce\xb4", "plain"};
        hid_t       t = string_type(6, H5T_CSET_ASCII);
        put(g, "fixed_ascii", t, s3, t, fixed);
        H5Tclose(t);
        t = string_type(8, H5T_CSET_UTF8);
        put(g, "fixed_utf8", t, s2, t, fixed_utf8);
        H5Tclose(t);
        t = string_type(H5T_VARIABLE, H5T_CSET_ASCII);
        put(g, "vlen_ascii", t, s3, t, vascii);
        H5Tclose(t);
        t = string_type(H5T_VARIABLE, H5T_CSET_UTF8);
        put(g, "vlen_utf8", t, s3, t, vutf8);
        H5Tclose(t);
    }
    { /* a compound nesting a compound, a string and an array */
        struct nested v[2] = {{1, {0.5, -3}, "ab", {1, 2, 3}}, {2, {1.5, 7}, "wxy", {4, 5, 6}}};
        hsize_t       three_d = 3;
        hid_t inner = H5Tcreate(H5T_COMPOUND, sizeof(struct inner)), outer = H5Tcreate(H5T_COMPOUND, sizeof v[0]);
        hid_t tag = string_type(4, H5T_CSET_ASCII), vec = H5Tarray_create2(H5T_NATIVE_FLOAT, 1, &three_d);
        H5Tinsert(inner, "x", HOFFSET(struct inner, x), H5T_NATIVE_DOUBLE);
        H5Tinsert(inner, "y", HOFFSET(struct inner, y), H5T_NATIVE_SHORT);
        H5Tinsert(outer, "id", HOFFSET(struct nested, id), H5T_NATIVE_UINT);
        H5Tinsert(outer, "pos", HOFFSET(struct nested, pos), inner);
        H5Tinsert(outer, "tag", HOFFSET(struct nested, tag), tag);
        H5Tinsert(outer, "vec", HOFFSET(struct nested, vec), vec);
        /* stored packed, with a big-endian member, as a file type usually differs from memory */
        hid_t finner = H5Tcreate(H5T_COMPOUND, 10), fvec = H5Tarray_create2(H5T_IEEE_F32LE, 1, &three_d);
        hid_t fouter = H5Tcreate(H5T_COMPOUND, 4 + 10 + 4 + 12);
        H5Tinsert(finner, "x", 0, H5T_IEEE_F64LE);
        H5Tinsert(finner, "y", 8, H5T_STD_I16BE);
        H5Tinsert(fouter, "id", 0, H5T_STD_U32LE);
        H5Tinsert(fouter, "pos", 4, finner);
        H5Tinsert(fouter, "tag", 14, tag);
        H5Tinsert(fouter, "vec", 18, fvec);
        put(g, "compound", fouter, s2, outer, v);
        H5Tclose(fouter), H5Tclose(fvec), H5Tclose(finner), H5Tclose(outer), H5Tclose(inner), H5Tclose(vec);
        H5Tclose(tag);
    }
    { /* an array type, opaque bytes, variable-length sequences */
        hsize_t adims[2] = {2, 3};
        short   a[2][2][3];
        for (int i = 0; i < 12; i++)
            (&a[0][0][0])[i] = (short)i;
        hid_t t = H5Tarray_create2(H5T_STD_I16LE, 2, adims);
        put(g, "array", t, s2, t, a);
        H5Tclose(t);

        unsigned char raw[12];
        for (int i = 0; i < 12; i++)
            raw[i] = (unsigned char)i;
        t = H5Tcreate(H5T_OPAQUE, 4);
        H5Tset_tag(t, "four raw bytes");
        put(g, "opaque", t, s3, t, raw);
        H5Tclose(t);

        int    i1[3] = {1, 2, 3}, i3[1] = {9};
        double d1[1] = {0.5}, d2[2] = {1.5, 2.5};
        hvl_t  vi[3] = {{3, i1}, {0, NULL}, {1, i3}}, vd[2] = {{1, d1}, {2, d2}};
        hid_t  ft = H5Tvlen_create(H5T_STD_I32LE), mt = H5Tvlen_create(H5T_NATIVE_INT);
        put(g, "vlen_int", ft, s3, mt, vi);
        H5Tclose(ft), H5Tclose(mt);
        ft = H5Tvlen_create(H5T_IEEE_F64LE), mt = H5Tvlen_create(H5T_NATIVE_DOUBLE);
        put(g, "vlen_float", ft, s2, mt, vd);
        H5Tclose(ft), H5Tclose(mt);
    }
    H5Sclose(s2), H5Sclose(s3), H5Sclose(s4);
    H5Gclose(g);
}

static void write_spaces_and_storage(hid_t file)
{
    hid_t       g = H5Gcreate2(file, "spaces", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t       scalar = H5Screate(H5S_SCALAR), null = H5Screate(H5S_NULL);
    double      v   = 2.5;
    const char *str = "one string";
    hid_t       vstr = string_type(H5T_VARIABLE, H5T_CSET_UTF8);
    CHECK(g >= 0, "spaces");
    put(g, "scalar", H5T_IEEE_F64LE, scalar, H5T_NATIVE_DOUBLE, &v);
    put(g, "null", H5T_STD_I32LE, null, H5T_NATIVE_INT, NULL);
    put(g, "scalar_str", vstr, scalar, vstr, &str);
    H5Gclose(g);

    g = H5Gcreate2(file, "storage", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(g >= 0, "storage");
    { /* chunked, shuffled and deflated, with attributes of several types */
        int     data[4][10];
        hsize_t dims[2] = {4, 10}, chunk[2] = {2, 5}, mdims[2] = {2, 3}, two = 2;
        for (int i = 0; i < 40; i++)
            (&data[0][0])[i] = i;
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), space = simple(2, dims);
        H5Pset_chunk(dcpl, 2, chunk);
        H5Pset_shuffle(dcpl);
        H5Pset_deflate(dcpl, 6);
        hid_t d = dataset(g, "gzip_shuffle", H5T_STD_I32LE, space, dcpl, H5T_NATIVE_INT, data);

        const char    *units = "m/s";
        unsigned short matrix[2][3] = {{0, 1, 2}, {3, 4, 5}};
        int            r1[2] = {1, 2}, r2[1] = {3};
        hvl_t          ragged[2] = {{2, r1}, {1, r2}};
        hid_t          fixed = string_type(4, H5T_CSET_ASCII), ms = simple(2, mdims), ps = simple(1, &two);
        hid_t          vl = H5Tvlen_create(H5T_STD_I32LE), mvl = H5Tvlen_create(H5T_NATIVE_INT);
        attribute(d, "units", fixed, scalar, fixed, units);
        attribute(d, "matrix", H5T_STD_U16LE, ms, H5T_NATIVE_USHORT, matrix);
        attribute(d, "ragged", vl, ps, mvl, ragged);
        attribute(d, "empty", H5T_IEEE_F64LE, null, H5T_NATIVE_DOUBLE, NULL);
        H5Tclose(vl), H5Tclose(mvl), H5Tclose(fixed), H5Sclose(ms), H5Sclose(ps);
        H5Dclose(d), H5Sclose(space), H5Pclose(dcpl);
    }
    { /* fill values: a partly written chunked dataset, an unwritten contiguous one */
        hsize_t dims[2] = {3, 4}, chunk[2] = {3, 2}, start[2] = {0, 0}, count[2] = {1, 2};
        float   fill = -1.5f, part[2] = {1, 2};
        hid_t   dcpl = H5Pcreate(H5P_DATASET_CREATE), space = simple(2, dims), mem = simple(2, count);
        H5Pset_chunk(dcpl, 2, chunk);
        H5Pset_fill_value(dcpl, H5T_NATIVE_FLOAT, &fill);
        hid_t d = dataset(g, "filled", H5T_IEEE_F32LE, space, dcpl, 0, NULL);
        H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL);
        CHECK(H5Dwrite(d, H5T_NATIVE_FLOAT, mem, space, H5P_DEFAULT, part) >= 0, "filled");
        H5Dclose(d), H5Sclose(mem), H5Sclose(space), H5Pclose(dcpl);

        hsize_t        five  = 5;
        unsigned short ufill = 17;
        dcpl = H5Pcreate(H5P_DATASET_CREATE), space = simple(1, &five);
        H5Pset_fill_value(dcpl, H5T_NATIVE_USHORT, &ufill);
        H5Dclose(dataset(g, "unwritten", H5T_STD_U16LE, space, dcpl, 0, NULL));
        H5Sclose(space), H5Pclose(dcpl);
    }
    { /* resizable: written, then extended */
        hsize_t   dims[2] = {2, 3}, maxdims[2] = {H5S_UNLIMITED, 3}, chunk[2] = {1, 3}, grown[2] = {4, 3};
        long long fill = -7, data[6] = {0, 1, 2, 3, 4, 5};
        hid_t     dcpl = H5Pcreate(H5P_DATASET_CREATE), space = H5Screate_simple(2, dims, maxdims);
        H5Pset_chunk(dcpl, 2, chunk);
        H5Pset_fill_value(dcpl, H5T_NATIVE_LLONG, &fill);
        hid_t d = dataset(g, "resizable", H5T_STD_I64LE, space, dcpl, H5T_NATIVE_LLONG, data);
        CHECK(H5Dset_extent(d, grown) >= 0, "H5Dset_extent");
        H5Dclose(d), H5Sclose(space), H5Pclose(dcpl);
    }
    H5Tclose(vstr), H5Sclose(scalar), H5Sclose(null);
    H5Gclose(g);
}

static void write_groups_types_links(hid_t file, const char *ext_name)
{
    hid_t   lcpl = H5Pcreate(H5P_LINK_CREATE), scalar = H5Screate(H5S_SCALAR);
    int     depth = 3;
    hsize_t two   = 2;
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t g = H5Gcreate2(file, "nested/level1/level2", lcpl, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(g >= 0, "nested groups");
    attribute(g, "depth", H5T_STD_I32LE, scalar, H5T_NATIVE_INT, &depth);
    H5Gclose(g);

    /* creation order tracked (links and attributes), made out of name order */
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    H5Pset_attr_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    g = H5Gcreate2(file, "ordered", H5P_DEFAULT, gcpl, H5P_DEFAULT);
    CHECK(g >= 0, "ordered");
    const char *names[3] = {"zeta", "alpha", "mid"};
    for (int i = 0; i < 3; i++)
        H5Gclose(H5Gcreate2(g, names[i], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    unsigned char second = 2, first = 1;
    attribute(g, "second", H5T_STD_U8LE, scalar, H5T_NATIVE_UCHAR, &second);
    attribute(g, "first", H5T_STD_U8LE, scalar, H5T_NATIVE_UCHAR, &first);
    H5Gclose(g), H5Pclose(gcpl);

    /* root attributes */
    const char *title  = "sample";
    float       scores[2] = {1.5f, 2.5f};
    hid_t       vstr = string_type(H5T_VARIABLE, H5T_CSET_UTF8), pair = simple(1, &two);
    attribute(file, "title", vstr, scalar, vstr, &title);
    attribute(file, "scores", H5T_IEEE_F32BE, pair, H5T_NATIVE_FLOAT, scores);
    H5Tclose(vstr);

    /* a committed datatype, used by a dataset and an attribute */
    struct {
        float x, y;
    } pts[2] = {{1, 2}, {3, 4}}, origin = {0, 0};
    hid_t point = H5Tcreate(H5T_COMPOUND, sizeof pts[0]);
    H5Tinsert(point, "x", 0, H5T_IEEE_F32LE);
    H5Tinsert(point, "y", sizeof(float), H5T_IEEE_F32LE);
    CHECK(H5Tcommit2(file, "point_t", point, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) >= 0, "H5Tcommit2");
    hid_t d = dataset(file, "points", point, pair, H5P_DEFAULT, point, pts);
    attribute(d, "origin", point, scalar, point, &origin);
    H5Dclose(d), H5Tclose(point), H5Sclose(pair);

    /* links */
    CHECK(H5Gclose(H5Gcreate2(file, "links", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) >= 0, "links");
    CHECK(H5Lcreate_hard(file, "numbers/i32le", file, "links/hard", H5P_DEFAULT, H5P_DEFAULT) >= 0, "hard");
    CHECK(H5Lcreate_soft("/numbers/f64le", file, "links/soft", H5P_DEFAULT, H5P_DEFAULT) >= 0, "soft");
    CHECK(H5Lcreate_soft("/no/such/object", file, "links/dangling", H5P_DEFAULT, H5P_DEFAULT) >= 0, "dangling");
    CHECK(H5Lcreate_external(ext_name, "/target", file, "links/external", H5P_DEFAULT, H5P_DEFAULT) >= 0,
          "external");
    H5Sclose(scalar), H5Pclose(lcpl);
}

static hid_t create(const char *name, const char *expected)
{
    char  conn[64] = "";
    hid_t file     = H5Fcreate(name, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(file >= 0, name);
    CHECK(H5VLget_connector_name(file, conn, sizeof conn) > 0, "H5VLget_connector_name");
    printf("%s: connector %s\n", name, conn);
    CHECK(strcmp(conn, expected) == 0, "the file is served by the expected connector");
    return file;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s NAME CONNECTOR\n", argv[0]);
        return 2;
    }
    const char *name = argv[1], *slash = strrchr(name, '/');
    size_t      stem = strlen(name) - (strlen(name) > 3 && !strcmp(name + strlen(name) - 3, ".h5") ? 3 : 0);
    char        ext_path[4096];
    snprintf(ext_path, sizeof ext_path, "%.*s_ext.h5", (int)stem, name);
    const char *ext_name = slash ? ext_path + (slash - name) + 1 : ext_path; /* the link names it relatively */

    hid_t   file = create(ext_path, argv[2]);
    hsize_t four = 4;
    short   values[4] = {0, 1, 2, 3};
    hid_t   g = H5Gcreate2(file, "target", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), space = simple(1, &four);
    put(g, "values", H5T_STD_I16LE, space, H5T_NATIVE_SHORT, values);
    H5Sclose(space), H5Gclose(g);
    CHECK(H5Fclose(file) >= 0, "H5Fclose");

    file = create(name, argv[2]);
    write_numbers(file);
    write_kinds(file);
    write_spaces_and_storage(file);
    write_groups_types_links(file, ext_name); /* the hard link needs /numbers */
    CHECK(H5Fclose(file) >= 0, "H5Fclose");
    printf("written\n");
    return 0;
}
