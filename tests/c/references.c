/*
 * HDF5 1.12-style references (H5R_ref_t) from C: object, attribute and
 * region references are made, stored in a dataset and an attribute, read
 * back and followed. Prints one line per fact, so a run through a connector
 * can be compared with a native run; bad input must give errors, not crashes.
 * Usage: references FILE
 */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(x)                                                                                             \
    do {                                                                                                     \
        if ((x) < 0) {                                                                                       \
            printf("FAIL line %d: %s\n", __LINE__, #x);                                                      \
            return 1;                                                                                        \
        }                                                                                                    \
    } while (0)

static void print_name(const char *what, H5R_ref_t *ref)
{
    char    name[64] = "";
    ssize_t n        = H5Rget_obj_name(ref, H5P_DEFAULT, name, sizeof name);
    printf("%s: %s (%zd)\n", what, n < 0 ? "error" : name, n);
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "references.h5";
    hid_t       fid, gid, did, sid, aid, rsid, rdid, obj, attr, region;
    hsize_t     dims[1] = {10}, four[1] = {4}, start[1] = {2}, count[1] = {3};
    int         data[10], value = 0;
    H5R_ref_t   refs[4], back[4];
    H5O_type_t  otype;
    char        conn[32] = "", name[64] = "";
    htri_t      eq;
    herr_t      status;
    hssize_t    npoints;

    for (int i = 0; i < 10; i++)
        data[i] = i * i;
    CHECK(fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    H5VLget_connector_name(fid, conn, sizeof conn);
    printf("connector: %s\n", conn);
    CHECK(gid = H5Gcreate2(fid, "group", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    CHECK(sid = H5Screate_simple(1, dims, NULL));
    CHECK(did = H5Dcreate2(gid, "data", H5T_NATIVE_INT, sid, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    CHECK(H5Dwrite(did, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
    CHECK(aid = H5Acreate2(did, "units", H5T_NATIVE_INT, H5Screate(H5S_SCALAR), H5P_DEFAULT, H5P_DEFAULT));
    value = 42;
    CHECK(H5Awrite(aid, H5T_NATIVE_INT, &value));
    CHECK(H5Aclose(aid));

    /* Make one of each kind, and a null one. */
    CHECK(H5Rcreate_object(fid, "group", H5P_DEFAULT, &refs[0]));
    CHECK(H5Rcreate_attr(gid, "data", "units", H5P_DEFAULT, &refs[1]));
    CHECK(H5Sselect_hyperslab(sid, H5S_SELECT_SET, start, NULL, count, NULL));
    CHECK(H5Rcreate_region(gid, "data", sid, H5P_DEFAULT, &refs[2]));
    memset(&refs[3], 0, sizeof refs[3]);
    printf("types: %d %d %d\n", (int)H5Rget_type(&refs[0]), (int)H5Rget_type(&refs[1]),
           (int)H5Rget_type(&refs[2]));

    /* Store them in a dataset and in an attribute, then close everything. */
    CHECK(rsid = H5Screate_simple(1, four, NULL));
    CHECK(rdid = H5Dcreate2(fid, "refs", H5T_STD_REF, rsid, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    CHECK(H5Dwrite(rdid, H5T_STD_REF, H5S_ALL, H5S_ALL, H5P_DEFAULT, refs));
    CHECK(aid = H5Acreate2(fid, "refs", H5T_STD_REF, rsid, H5P_DEFAULT, H5P_DEFAULT));
    CHECK(H5Awrite(aid, H5T_STD_REF, refs));
    CHECK(H5Aclose(aid));
    CHECK(H5Dclose(rdid));
    for (int i = 0; i < 3; i++)
        CHECK(H5Rdestroy(&refs[i]));
    CHECK(H5Dclose(did));
    CHECK(H5Gclose(gid));

    /* Read them back and follow them. */
    CHECK(rdid = H5Dopen2(fid, "refs", H5P_DEFAULT));
    CHECK(H5Dread(rdid, H5T_STD_REF, H5S_ALL, H5S_ALL, H5P_DEFAULT, back));
    CHECK(H5Rget_obj_type3(&back[0], H5P_DEFAULT, &otype));
    printf("object type: %d\n", (int)otype);
    print_name("object name", &back[0]);
    print_name("attribute owner", &back[1]);
    print_name("region dataset", &back[2]);
    CHECK(H5Rget_file_name(&back[0], name, sizeof name) < 0 ? -1 : 0);
    printf("file name matches: %d\n", strcmp(name, path) == 0);
    CHECK(H5Rget_attr_name(&back[1], name, sizeof name) < 0 ? -1 : 0);
    printf("attribute name: %s\n", name);

    CHECK(obj = H5Ropen_object(&back[0], H5P_DEFAULT, H5P_DEFAULT));
    printf("opened object is a group: %d\n", H5Iget_type(obj) == H5I_GROUP);
    CHECK(H5Oclose(obj));
    CHECK(attr = H5Ropen_attr(&back[1], H5P_DEFAULT, H5P_DEFAULT));
    CHECK(H5Aread(attr, H5T_NATIVE_INT, &value));
    printf("attribute value: %d\n", value);
    CHECK(H5Aclose(attr));
    CHECK(region = H5Ropen_region(&back[2], H5P_DEFAULT, H5P_DEFAULT));
    npoints = H5Sget_select_npoints(region);
    printf("region points: %lld\n", (long long)npoints);
    {
        int     picked[3] = {0};
        hsize_t n[1]      = {3};
        hid_t   msid      = H5Screate_simple(1, n, NULL);
        hid_t   rd        = H5Ropen_object(&back[2], H5P_DEFAULT, H5P_DEFAULT);
        CHECK(H5Dread(rd, H5T_NATIVE_INT, msid, region, H5P_DEFAULT, picked));
        printf("region values: %d %d %d\n", picked[0], picked[1], picked[2]);
        H5Dclose(rd);
        H5Sclose(msid);
    }
    CHECK(H5Sclose(region));

    /* The attribute holds equal references. */
    CHECK(aid = H5Aopen(fid, "refs", H5P_DEFAULT));
    memset(refs, 0, sizeof refs);
    CHECK(H5Aread(aid, H5T_STD_REF, refs));
    CHECK(H5Aclose(aid));
    for (int i = 0; i < 3; i++) {
        CHECK(eq = H5Requal(&refs[i], &back[i]));
        printf("attribute ref %d equal: %d\n", i, (int)eq);
    }
    printf("null ref type: %d\n", (int)H5Rget_type(&back[3]));

    /* Bad input: a null reference, and references to an object since deleted. */
    H5E_BEGIN_TRY
    {
        status = (herr_t)H5Ropen_object(&back[3], H5P_DEFAULT, H5P_DEFAULT);
        printf("opening a null reference fails: %d\n", status < 0);
        CHECK(H5Ldelete(fid, "group", H5P_DEFAULT));
        status = (herr_t)H5Ropen_object(&back[0], H5P_DEFAULT, H5P_DEFAULT);
        printf("opening a deleted object fails: %d\n", status < 0);
        status = (herr_t)H5Ropen_attr(&back[1], H5P_DEFAULT, H5P_DEFAULT);
        printf("opening a deleted attribute owner fails: %d\n", status < 0);
    }
    H5E_END_TRY

    for (int i = 0; i < 3; i++) {
        CHECK(H5Rdestroy(&refs[i]));
        CHECK(H5Rdestroy(&back[i]));
    }
    CHECK(H5Dclose(rdid));
    CHECK(H5Sclose(rsid));
    CHECK(H5Sclose(sid));
    CHECK(H5Fclose(fid));
    printf("PASS\n");
    return 0;
}
