/*
 * H5ASexecute from a C program: write a chunked dataset through the
 * connector the environment selects, ship a map and a combine script to it,
 * print the JSON result. Then a failing map and an empty map script: both
 * must fail with the cause on HDF5's error stack, not crash.
 *
 * Usage: analysis_execute FILE
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "h5as.h"

#define ROWS 60
#define COLS 10

static const char *MAP = "def map(block):\n"
                         "    x = block['/grid/x']\n"
                         "    return int(x[x % 7 == 0].sum()), int(x.size)\n";
static const char *COMBINE = "def combine(parts):\n"
                             "    return {'sum': sum(p[0] for p in parts), 'count': sum(p[1] for p in parts),\n"
                             "            'shards': len(parts)}\n";
static const char *FAILING = "def map(block):\n"
                             "    if block.index == 2:\n"
                             "        raise ValueError('no good shard')\n"
                             "    return block['/grid/x'].size\n";

static herr_t print_error(unsigned n, const H5E_error2_t *err, void *data)
{
    (void)n;
    (void)data;
    printf("error: %s\n", err->desc);
    return 0;
}

int main(int argc, char **argv)
{
    long long values[ROWS][COLS];
    hsize_t   dims[2] = {ROWS, COLS}, chunk[2] = {15, COLS};
    char      conn[64] = "";
    char     *json     = NULL;
    hid_t     file, group, space, dcpl, dset;
    herr_t    status;

    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE\n", argv[0]);
        return 2;
    }
    for (int i = 0; i < ROWS; i++)
        for (int j = 0; j < COLS; j++)
            values[i][j] = i * COLS + j;
    file = H5Fcreate(argv[1], H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0)
        return 1;
    H5VLget_connector_name(file, conn, sizeof conn);
    printf("connector: %s\n", conn);
    group = H5Gcreate2(file, "grid", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    space = H5Screate_simple(2, dims, NULL);
    dcpl  = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 2, chunk);
    dset = H5Dcreate2(group, "x", H5T_NATIVE_LLONG, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (dset < 0 || H5Dwrite(dset, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) < 0)
        return 1;

    status = H5ASexecute(file, MAP, COMBINE, &json);
    if (status < 0 || !json) {
        H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, print_error, NULL);
        return 1;
    }
    printf("result: %s\n", json);
    H5free_memory(json);

    json   = NULL;
    status = -1;
    H5E_BEGIN_TRY
    {
        status = H5ASexecute(file, FAILING, NULL, &json);
    }
    H5E_END_TRY
    printf("failing map: status %d, result %s\n", (int)status, json ? json : "(none)");
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, print_error, NULL);
    H5Eclear2(H5E_DEFAULT);

    H5E_BEGIN_TRY
    {
        status = H5ASexecute(file, "x = 1\n", NULL, &json);
    }
    H5E_END_TRY
    printf("no map function: status %d\n", (int)status);
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, print_error, NULL);
    H5Eclear2(H5E_DEFAULT);

    H5Dclose(dset);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Gclose(group);
    H5Fclose(file);
    printf("done\n");
    return 0;
}
