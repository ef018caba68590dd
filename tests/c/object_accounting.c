/*
 * object_accounting.c: open-object counts, names of unlinked objects,
 * references to committed datatypes, attribute creation properties, object
 * times and mounting. It prints what HDF5 reports; the test runs it natively
 * and through h5pyvol and compares the two outputs line by line.
 */
#include <hdf5.h>
#include <stdio.h>
#include <string.h>

#define CHECK(call)                                                                                \
    do {                                                                                           \
        if ((call) < 0) {                                                                          \
            printf("FAILED: %s (line %d)\n", #call, __LINE__);                                     \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

static int refcount(hid_t loc, const char *name)
{
    H5O_info2_t info;
    if (H5Oget_info_by_name3(loc, name, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0)
        return -1;
    return (int)info.rc;
}

static int counts(void)
{
    hid_t f1, f2, g, t, s, a, d, ids[8];
    CHECK(f1 = H5Fcreate("accounting-1.h5", H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    CHECK(f2 = H5Fcreate("accounting-2.h5", H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    CHECK(g = H5Gcreate2(f1, "g", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    CHECK(t = H5Tcopy(H5T_NATIVE_INT));
    CHECK(H5Tcommit2(f2, "t", t, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    CHECK(s = H5Screate(H5S_SCALAR));
    CHECK(a = H5Acreate2(f2, "a", H5T_NATIVE_INT, s, H5P_DEFAULT, H5P_DEFAULT));
    CHECK(d = H5Dcreate2(f2, "d", H5T_NATIVE_INT, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    printf("open datatypes: %zd\n", H5Fget_obj_count((hid_t)H5F_OBJ_ALL, H5F_OBJ_DATATYPE));
    printf("open objects: %zd\n", H5Fget_obj_count((hid_t)H5F_OBJ_ALL, H5F_OBJ_ALL));
    printf("open objects of file 2: %zd\n", H5Fget_obj_count(f2, H5F_OBJ_ALL));
    printf("the open datatype is the committed one: %d\n",
           H5Fget_obj_ids((hid_t)H5F_OBJ_ALL, H5F_OBJ_DATATYPE, 8, ids) == 1 && ids[0] == t);
    H5Aclose(a);
    H5Dclose(d);
    H5Tclose(t);
    H5Sclose(s);
    H5Gclose(g);
    H5Fclose(f1);
    H5Fclose(f2);
    printf("open objects after closing: %zd\n", H5Fget_obj_count((hid_t)H5F_OBJ_ALL, H5F_OBJ_ALL));
    return 0;
}

static int names_and_references(void)
{
    hid_t f, t, s, a, d, g;
    CHECK(f = H5Fcreate("accounting-3.h5", H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    CHECK(t = H5Tcopy(H5T_NATIVE_INT));
    CHECK(H5Tcommit2(f, "t", t, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    printf("committed type rc: %d\n", refcount(f, "t"));
    CHECK(s = H5Screate(H5S_SCALAR));
    CHECK(a = H5Acreate2(f, "a", t, s, H5P_DEFAULT, H5P_DEFAULT));
    printf("rc with an attribute of it: %d\n", refcount(f, "t"));
    CHECK(d = H5Dcreate2(f, "d", t, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    printf("rc with a dataset of it too: %d\n", refcount(f, "t"));
    CHECK(H5Aclose(a));
    CHECK(H5Adelete(f, "a"));
    printf("rc after deleting the attribute: %d\n", refcount(f, "t"));
    CHECK(H5Dclose(d));
    CHECK(H5Ldelete(f, "d", H5P_DEFAULT));
    printf("rc after deleting the dataset: %d\n", refcount(f, "t"));

    CHECK(g = H5Gcreate2(f, "g", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    CHECK(H5Lmove(f, "g", f, "moved", H5P_DEFAULT, H5P_DEFAULT));
    {
        char name[64] = "";
        H5Iget_name(g, name, sizeof name);
        printf("name of a moved group: %s\n", name);
    }
    CHECK(H5Ldelete(f, "t", H5P_DEFAULT));
    printf("name length of a deleted datatype: %zd\n", H5Iget_name(t, NULL, 0));
    CHECK(H5Lcreate_hard(t, ".", f, "again", H5P_DEFAULT, H5P_DEFAULT));
    CHECK(H5Tclose(t));
    CHECK(H5Gclose(g));
    CHECK(H5Sclose(s));
    CHECK(H5Fclose(f));
    CHECK(f = H5Fopen("accounting-3.h5", H5F_ACC_RDONLY, H5P_DEFAULT));
    CHECK(t = H5Topen2(f, "again", H5P_DEFAULT));
    printf("relinked datatype reopened, rc %d, class %d\n", refcount(f, "again"), (int)H5Tget_class(t));
    H5Tclose(t);
    H5Fclose(f);
    return 0;
}

static int creation_properties_and_times(void)
{
    hid_t       f, s, acpl, a, got, dcpl, d;
    H5T_cset_t  cset = H5T_CSET_ASCII;
    H5O_info2_t info;

    CHECK(f = H5Fcreate("accounting-4.h5", H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    CHECK(s = H5Screate(H5S_SCALAR));
    CHECK(acpl = H5Pcreate(H5P_ATTRIBUTE_CREATE));
    CHECK(H5Pset_char_encoding(acpl, H5T_CSET_UTF8));
    CHECK(a = H5Acreate2(f, "utf8", H5T_NATIVE_INT, s, acpl, H5P_DEFAULT));
    CHECK(H5Aclose(a));
    CHECK(a = H5Aopen(f, "utf8", H5P_DEFAULT));
    CHECK(got = H5Aget_create_plist(a));
    CHECK(H5Pget_char_encoding(got, &cset));
    printf("attribute name encoding: %s\n", cset == H5T_CSET_UTF8 ? "utf-8" : "ascii");
    H5Pclose(got);
    H5Aclose(a);
    CHECK(a = H5Acreate2(f, "plain", H5T_NATIVE_INT, s, H5P_DEFAULT, H5P_DEFAULT));
    CHECK(got = H5Aget_create_plist(a));
    CHECK(H5Pget_char_encoding(got, &cset));
    printf("default attribute name encoding: %s\n", cset == H5T_CSET_UTF8 ? "utf-8" : "ascii");
    H5Pclose(got);
    H5Aclose(a);

    CHECK(dcpl = H5Pcreate(H5P_DATASET_CREATE));
    CHECK(H5Pset_obj_track_times(dcpl, 0));
    CHECK(d = H5Dcreate2(f, "untimed", H5T_NATIVE_INT, s, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    CHECK(H5Oget_info3(d, &info, H5O_INFO_TIME));
    printf("untracked times are zero: %d\n", info.btime == 0 && info.mtime == 0);
    H5Dclose(d);
    CHECK(H5Pset_obj_track_times(dcpl, 1));
    CHECK(d = H5Dcreate2(f, "timed", H5T_NATIVE_INT, s, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    CHECK(H5Oget_info3(d, &info, H5O_INFO_TIME));
    printf("tracked change time is set: %d\n", info.ctime > 0);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Pclose(acpl);
    H5Sclose(s);
    H5Fclose(f);
    return 0;
}

static int mounting(void)
{
    hid_t  parent, child, other, g, s, d;
    herr_t status;

    CHECK(child = H5Fcreate("accounting-child.h5", H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    CHECK(s = H5Screate(H5S_SCALAR));
    CHECK(d = H5Dcreate2(child, "inside", H5T_NATIVE_INT, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5Dclose(d);
    CHECK(parent = H5Fcreate("accounting-parent.h5", H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    CHECK(other = H5Fcreate("accounting-other.h5", H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    CHECK(g = H5Gcreate2(parent, "mnt", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    CHECK(H5Gclose(g));
    printf("before mounting, /mnt/inside exists: %d\n", H5Lexists(parent, "/mnt/inside", H5P_DEFAULT));
    CHECK(H5Fmount(parent, "/mnt", child, H5P_DEFAULT));
    printf("mounted, /mnt/inside exists: %d\n", H5Lexists(parent, "/mnt/inside", H5P_DEFAULT));
    CHECK(d = H5Dopen2(parent, "/mnt/inside", H5P_DEFAULT));
    {
        char name[64] = "";
        H5Iget_name(d, name, sizeof name);
        printf("name of a dataset in the mounted file: %s\n", name);
    }
    H5Dclose(d);
    H5E_BEGIN_TRY
    {
        status = H5Fmount(other, "/", child, H5P_DEFAULT);
    }
    H5E_END_TRY
    printf("mounting a mounted file again fails: %d\n", status < 0);
    CHECK(H5Funmount(parent, "/mnt"));
    printf("unmounted, /mnt/inside exists: %d\n", H5Lexists(parent, "/mnt/inside", H5P_DEFAULT));
    H5E_BEGIN_TRY
    {
        status = H5Funmount(parent, "/mnt");
    }
    H5E_END_TRY
    printf("unmounting a group with no file fails: %d\n", status < 0);
    H5Sclose(s);
    H5Fclose(other);
    H5Fclose(parent);
    H5Fclose(child);
    return 0;
}

int main(void)
{
    hid_t f;
    char  conn[32] = "";

    CHECK(f = H5Fcreate("accounting-0.h5", H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    H5VLget_connector_name(f, conn, sizeof conn);
    H5Fclose(f);
    fprintf(stderr, "connector: %s\n", conn); /* not compared: differs by design */
    if (counts() || names_and_references() || creation_properties_and_times() || mounting())
        return 1;
    printf("DONE\n");
    return 0;
}
