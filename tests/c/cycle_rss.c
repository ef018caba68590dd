/*
 * cycle_rss.c: memory growth of a C program that creates a file, writes a
 * dataset of 8 KB and closes it, over and over (each time truncating the
 * same name). With "attrs" it also writes an attribute, then opens the file
 * again and reads the data and the attribute back.
 *
 * Usage: cycle_rss MODE CYCLES CHECKPOINT LIMIT_KB
 *   MODE is "plain" or "attrs". Prints the maximum resident set size at
 *   cycle CHECKPOINT and at the end; exits 1 if it grew by more than
 *   LIMIT_KB kilobytes between the two, or on any HDF5 failure. The first
 *   line names the connector that served the file.
 */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define N 1024 /* doubles: 8 KB */

#define CHECK(cond, what)                                                                                    \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "FAIL: %s at cycle %ld\n", what, cycle);                                         \
            H5Eprint2(H5E_DEFAULT, stderr);                                                                  \
            return 1;                                                                                        \
        }                                                                                                    \
    } while (0)

static long max_rss_kb(void)
{
    struct rusage use;
    getrusage(RUSAGE_SELF, &use);
    return use.ru_maxrss; /* kilobytes on Linux */
}

int main(int argc, char **argv)
{
    static double data[N], back[N];
    const char   *name = "cycle.h5";
    hsize_t       dims[1] = {N};
    long          cycle = 0, cycles, checkpoint, limit_kb, at_checkpoint = 0, at_end;
    int           attrs, answer = 0;

    if (argc != 5 || (strcmp(argv[1], "plain") != 0 && strcmp(argv[1], "attrs") != 0)) {
        fprintf(stderr, "usage: %s plain|attrs CYCLES CHECKPOINT LIMIT_KB\n", argv[0]);
        return 2;
    }
    attrs      = strcmp(argv[1], "attrs") == 0;
    cycles     = atol(argv[2]);
    checkpoint = atol(argv[3]);
    limit_kb   = atol(argv[4]);
    for (int i = 0; i < N; i++)
        data[i] = i * 0.5;

    for (cycle = 1; cycle <= cycles; cycle++) {
        hid_t file, space, dset;

        file = H5Fcreate(name, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        CHECK(file >= 0, "H5Fcreate");
        if (cycle == 1) {
            char conn[64] = "";
            CHECK(H5VLget_connector_name(file, conn, sizeof conn) > 0, "H5VLget_connector_name");
            printf("connector: %s\n", conn);
        }
        space = H5Screate_simple(1, dims, NULL);
        dset  = H5Dcreate2(file, "d", H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        CHECK(dset >= 0, "H5Dcreate2");
        CHECK(H5Dwrite(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0, "H5Dwrite");
        if (attrs) {
            hid_t ascalar = H5Screate(H5S_SCALAR);
            hid_t a       = H5Acreate2(dset, "answer", H5T_STD_I32LE, ascalar, H5P_DEFAULT, H5P_DEFAULT);
            int   value   = (int)cycle;
            CHECK(a >= 0 && H5Awrite(a, H5T_NATIVE_INT, &value) >= 0, "H5Acreate2/H5Awrite");
            H5Aclose(a);
            H5Sclose(ascalar);
        }
        H5Dclose(dset);
        H5Sclose(space);
        CHECK(H5Fclose(file) >= 0, "H5Fclose");

        if (attrs) {
            hid_t a;
            file = H5Fopen(name, H5F_ACC_RDONLY, H5P_DEFAULT);
            CHECK(file >= 0, "H5Fopen");
            dset = H5Dopen2(file, "d", H5P_DEFAULT);
            CHECK(dset >= 0 && H5Dread(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, back) >= 0,
                  "H5Dopen2/H5Dread");
            CHECK(memcmp(back, data, sizeof data) == 0, "the data read back");
            a = H5Aopen(dset, "answer", H5P_DEFAULT);
            CHECK(a >= 0 && H5Aread(a, H5T_NATIVE_INT, &answer) >= 0 && answer == (int)cycle, "H5Aopen/H5Aread");
            H5Aclose(a);
            H5Dclose(dset);
            CHECK(H5Fclose(file) >= 0, "H5Fclose after reading");
        }
        if (cycle == checkpoint)
            at_checkpoint = max_rss_kb();
    }
    at_end = max_rss_kb();
    printf("max RSS at cycle %ld: %ld KB\n", checkpoint, at_checkpoint);
    printf("max RSS at cycle %ld: %ld KB\n", cycles, at_end);
    printf("growth: %ld KB (limit %ld KB)\n", at_end - at_checkpoint, limit_kb);
    if (at_end - at_checkpoint > limit_kb) {
        printf("FAIL: memory grew\n");
        return 1;
    }
    printf("PASS\n");
    return 0;
}
