/*
 * demo.c: an ordinary HDF5 C program. Nothing in it mentions h5pyvol: run
 * with HDF5_VOL_CONNECTOR="h5pyvol memory", its file lives in a Python
 * connector's memory instead of on disk.
 */
#include <hdf5.h>
#include <stdio.h>

int main(void)
{
    double  temps[3][4], back[3][4];
    hsize_t dims[2] = {3, 4};
    char    conn[32] = "?";
    hid_t   file, space, dset;

    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++)
            temps[i][j] = 20.0 + i + j / 4.0;

    file = H5Fcreate("weather.h5", H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0)
        return 1;
    H5VLget_connector_name(file, conn, sizeof conn);
    printf("[C] weather.h5 is served by the '%s' VOL connector\n", conn);
    space = H5Screate_simple(2, dims, NULL);
    dset  = H5Dcreate2(file, "temperature", H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, temps);
    H5Dread(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, back);
    printf("[C] wrote and read back a 3x4 dataset; last row: %.2f %.2f %.2f %.2f\n", back[2][0], back[2][1],
           back[2][2], back[2][3]);
    H5Dclose(dset);
    H5Sclose(space);
    return H5Fclose(file) < 0;
}
