/*
 * left_open.c: exits with a file, a group and a dataset still open, so HDF5's
 * exit handler closes them and then shuts the connector (and the Python it
 * started) down. The test checks the process ends cleanly.
 */
#include <hdf5.h>
#include <stdio.h>

int main(void)
{
    hsize_t dims[1] = {3};
    int     v[3]    = {1, 2, 3};
    hid_t   file    = H5Fcreate("left_open.h5", H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t   group   = H5Gcreate2(file, "g", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t   space   = H5Screate_simple(1, dims, NULL);
    hid_t   dset    = H5Dcreate2(group, "d", H5T_NATIVE_INT, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);

    if (dset < 0 || H5Dwrite(dset, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)
        return 1;
    printf("leaving objects open\n");
    return 0;
}
