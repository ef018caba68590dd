/*
 * roundtrip.c: a plain HDF5 C program, run by the tests with
 * HDF5_VOL_CONNECTOR set. It checks that HDF5 really uses h5pyvol (HDF5
 * silently falls back to the native connector when a plugin fails to load),
 * then writes and reads groups, datasets, attributes and links, and checks
 * the data. Prints "PASS" and exits 0 only if everything matched.
 */
#include <hdf5.h>
#include <stdio.h>
#include <string.h>

#define CHECK(cond, what)                                                                                    \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "FAIL: %s (line %d)\n", what, __LINE__);                                        \
            H5Eprint2(H5E_DEFAULT, stderr);                                                                  \
            return 1;                                                                                        \
        }                                                                                                    \
    } while (0)

static herr_t count_link(hid_t g, const char *name, const H5L_info2_t *info, void *data)
{
    (void)g;
    (void)info;
    printf("link: %s\n", name);
    (*(int *)data)++;
    return 0;
}

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "roundtrip.h5";
    char        conn[64] = "";
    int         data[4][5], back[4][5], attr = 42, attr_back = 0, nlinks = 0;
    hsize_t     dims[2] = {4, 5}, one = 1;
    hid_t       file, group, space, dset, aspace, a;

    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 5; j++)
            data[i][j] = i * 10 + j;

    file = H5Fcreate(name, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(file >= 0, "H5Fcreate");
    CHECK(H5VLget_connector_name(file, conn, sizeof conn) > 0, "H5VLget_connector_name");
    printf("connector: %s\n", conn);
    CHECK(strcmp(conn, "h5pyvol") == 0, "the file is served by h5pyvol");

    group = H5Gcreate2(file, "/results", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(group >= 0, "H5Gcreate2");
    space = H5Screate_simple(2, dims, NULL);
    dset  = H5Dcreate2(group, "table", H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(dset >= 0, "H5Dcreate2");
    CHECK(H5Dwrite(dset, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0, "H5Dwrite");
    aspace = H5Screate_simple(1, &one, NULL);
    a      = H5Acreate2(dset, "answer", H5T_STD_I32BE, aspace, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(a >= 0 && H5Awrite(a, H5T_NATIVE_INT, &attr) >= 0, "H5Acreate2/H5Awrite");
    CHECK(H5Lcreate_soft("/results/table", file, "shortcut", H5P_DEFAULT, H5P_DEFAULT) >= 0, "H5Lcreate_soft");
    H5Aclose(a);
    H5Sclose(aspace);
    H5Dclose(dset);
    H5Sclose(space);
    H5Gclose(group);
    CHECK(H5Fclose(file) >= 0, "H5Fclose");

    /* Reopen (the in-memory file lives as long as the process) and read back. */
    file = H5Fopen(name, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(file >= 0, "H5Fopen");
    dset = H5Dopen2(file, "shortcut", H5P_DEFAULT);
    CHECK(dset >= 0, "H5Dopen2 through a soft link");
    CHECK(H5Dread(dset, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, back) >= 0, "H5Dread");
    CHECK(memcmp(data, back, sizeof data) == 0, "data read back equals data written");
    a = H5Aopen(dset, "answer", H5P_DEFAULT);
    CHECK(a >= 0 && H5Aread(a, H5T_NATIVE_INT, &attr_back) >= 0, "H5Aread");
    CHECK(attr_back == 42, "attribute read back");
    CHECK(H5Literate2(file, H5_INDEX_NAME, H5_ITER_INC, NULL, count_link, &nlinks) >= 0, "H5Literate2");
    CHECK(nlinks == 2, "two links in the root group");
    H5E_BEGIN_TRY
    {
        CHECK(H5Dopen2(file, "missing", H5P_DEFAULT) < 0, "opening a missing dataset fails");
    }
    H5E_END_TRY
    H5Aclose(a);
    H5Dclose(dset);
    CHECK(H5Fclose(file) >= 0, "H5Fclose");
    printf("PASS\n");
    return 0;
}
