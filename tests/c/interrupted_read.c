/*
 * interrupted_read.c: a C program whose read through a slow connector is
 * interrupted by SIGINT (the test sends it). The read must fail with an HDF5
 * error that says so, and the program must be able to go on.
 *
 * Prints "connector: NAME", "read: failed" or "read: ok", the message of
 * the innermost error on HDF5's error stack ("message: ..."), and, after a
 * further write and read of another dataset, "after: ok". Exits 0 when all
 * of that happened. With the argument "then-wait" it then creates the file
 * "waiting" and sleeps in C for up to 60 s (exit 3): a SIGINT then is the
 * program's own, and under the default disposition ends it.
 */
#include <hdf5.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static herr_t first_message(unsigned n, const H5E_error2_t *err, void *data)
{
    if (n == 0 && err->desc)
        snprintf((char *)data, 1024, "%s", err->desc);
    return 0;
}

int main(int argc, char **argv)
{
    double  values[4] = {1, 2, 3, 4}, back[4];
    hsize_t dims[1]   = {4};
    char    conn[64] = "", message[1024] = "";
    hid_t   file, space, slow, fast, scalar, a;
    herr_t  status;

    file  = H5Fcreate("slow.h5", H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    space = H5Screate_simple(1, dims, NULL);
    slow  = H5Dcreate2(file, "slow", H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    fast  = H5Dcreate2(file, "fast", H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0 || slow < 0 || fast < 0 || H5VLget_connector_name(file, conn, sizeof conn) < 0)
        return 2;
    printf("connector: %s\n", conn);
    scalar = H5Screate(H5S_SCALAR);
    a      = H5Acreate2(slow, "slow", H5T_NATIVE_INT, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Aclose(a);
    H5Dwrite(slow, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values);
    fflush(stdout);

    H5E_BEGIN_TRY
    {
        status = H5Dread(slow, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, back);
        H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, first_message, message);
    }
    H5E_END_TRY
    printf("read: %s\n", status < 0 ? "failed" : "ok");
    printf("message: %s\n", message);

    if (H5Dwrite(fast, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) >= 0 &&
        H5Dread(fast, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, back) >= 0 &&
        memcmp(back, values, sizeof back) == 0)
        printf("after: ok\n");
    H5Sclose(scalar);
    H5Sclose(space);
    H5Dclose(slow);
    H5Dclose(fast);
    H5Fclose(file);
    if (argc > 1 && strcmp(argv[1], "then-wait") == 0) {
        FILE *mark;
        fflush(stdout); /* a signal ends the program with no exit to flush it */
        mark = fopen("waiting", "w");
        if (mark)
            fclose(mark);
        sleep(60);
        return 3;
    }
    return status < 0 ? 0 : 1;
}
