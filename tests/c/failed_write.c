/*
 * failed_write.c: run with a connector whose second write to a dataset
 * raises. Checks that H5Dwrite fails, that the Python exception's text is on
 * HDF5's error stack, and that the data written first is intact.
 */
#include <hdf5.h>
#include <stdio.h>
#include <string.h>

static herr_t find_message(unsigned n, const H5E_error2_t *err, void *found)
{
    (void)n;
    if (err->desc && strstr(err->desc, "RuntimeError: disk on fire"))
        *(int *)found = 1;
    return 0;
}

int main(void)
{
    int     first[4] = {1, 2, 3, 4}, second[4] = {9, 9, 9, 9}, back[4] = {0};
    hsize_t dims[1] = {4};
    int     found = 0;
    herr_t  status;
    hid_t   file  = H5Fcreate("failed_write.h5", H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t   space = H5Screate_simple(1, dims, NULL);
    hid_t   dset  = H5Dcreate2(file, "d", H5T_NATIVE_INT, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);

    if (dset < 0 || H5Dwrite(dset, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, first) < 0)
        return 1;
    H5E_BEGIN_TRY
    {
        status = H5Dwrite(dset, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, second);
    }
    H5E_END_TRY
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, find_message, &found);
    printf("second write: %s; message on the error stack: %s\n", status < 0 ? "failed" : "succeeded",
           found ? "yes" : "no");
    if (H5Dread(dset, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, back) < 0)
        return 1;
    printf("data kept: %s\n", memcmp(first, back, sizeof first) == 0 ? "yes" : "no");
    H5Dclose(dset);
    H5Sclose(space);
    H5Fclose(file);
    return (status < 0 && found && memcmp(first, back, sizeof first) == 0) ? 0 : 1;
}
