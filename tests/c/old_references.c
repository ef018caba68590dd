/*
 * HDF5 1.10-style references (hobj_ref_t, hdset_reg_ref_t) from C, as h5py
 * makes them: H5Rcreate with H5R_OBJECT and H5R_DATASET_REGION, stored in a
 * dataset of H5T_STD_REF_DSETREG and an attribute of H5T_STD_REF_OBJ, read
 * back and followed (H5Rdereference2, H5Rget_region, H5Rget_obj_type2,
 * H5Rget_name). Prints one line per fact, so a run through a connector can be
 * compared with a native run; a null reference must give errors, not crashes.
 * Usage: old_references FILE
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

int main(int argc, char **argv)
{
    const char     *path = argc > 1 ? argv[1] : "old_references.h5";
    hid_t           fid, did, sid, rsid, rdid, aid, obj, region, msid;
    hsize_t         dims[2] = {4, 5}, three[1] = {3}, start[2] = {1, 1}, count[2] = {2, 3}, npick[1];
    hsize_t         coords[2][2] = {{0, 4}, {3, 0}};
    int             data[4][5], picked[6];
    hdset_reg_ref_t regs[3], back[3];
    hobj_ref_t      oref, oback;
    H5O_type_t      otype;
    char            conn[32] = "", name[64] = "";
    ssize_t         n;
    hssize_t        npoints;
    herr_t          status;

    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 5; j++)
            data[i][j] = 10 * i + j;
    CHECK(fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    H5VLget_connector_name(fid, conn, sizeof conn);
    printf("connector: %s\n", conn);
    CHECK(sid = H5Screate_simple(2, dims, NULL));
    CHECK(did = H5Dcreate2(fid, "data", H5T_NATIVE_INT, sid, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    CHECK(H5Dwrite(did, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));

    memset(regs, 0, sizeof regs); /* regs[2] stays null */
    CHECK(H5Sselect_hyperslab(sid, H5S_SELECT_SET, start, NULL, count, NULL));
    CHECK(H5Rcreate(&regs[0], fid, "data", H5R_DATASET_REGION, sid));
    CHECK(H5Sselect_elements(sid, H5S_SELECT_SET, 2, &coords[0][0]));
    CHECK(H5Rcreate(&regs[1], did, ".", H5R_DATASET_REGION, sid));
    CHECK(H5Rcreate(&oref, fid, "data", H5R_OBJECT, H5I_INVALID_HID));
    printf("two regions differ: %d\n", memcmp(&regs[0], &regs[1], sizeof regs[0]) != 0);

    CHECK(rsid = H5Screate_simple(1, three, NULL));
    CHECK(rdid = H5Dcreate2(fid, "regions", H5T_STD_REF_DSETREG, rsid, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    CHECK(H5Dwrite(rdid, H5T_STD_REF_DSETREG, H5S_ALL, H5S_ALL, H5P_DEFAULT, regs));
    CHECK(H5Dclose(rdid));
    CHECK(aid = H5Acreate2(fid, "object", H5T_STD_REF_OBJ, H5Screate(H5S_SCALAR), H5P_DEFAULT, H5P_DEFAULT));
    CHECK(H5Awrite(aid, H5T_STD_REF_OBJ, &oref));
    CHECK(H5Aclose(aid));
    CHECK(H5Dclose(did));

    CHECK(rdid = H5Dopen2(fid, "regions", H5P_DEFAULT));
    CHECK(H5Dread(rdid, H5T_STD_REF_DSETREG, H5S_ALL, H5S_ALL, H5P_DEFAULT, back));
    CHECK(H5Dclose(rdid));
    for (int i = 0; i < 2; i++) {
        CHECK(H5Rget_obj_type2(fid, H5R_DATASET_REGION, &back[i], &otype));
        CHECK(n = H5Rget_name(fid, H5R_DATASET_REGION, &back[i], name, sizeof name));
        printf("region %d: type %d, name %s (%zd)\n", i, (int)otype, name, n);
        CHECK(obj = H5Rdereference2(fid, H5P_DEFAULT, H5R_DATASET_REGION, &back[i]));
        CHECK(region = H5Rget_region(obj, H5R_DATASET_REGION, &back[i]));
        CHECK(npoints = H5Sget_select_npoints(region));
        printf("region %d: %lld points, kind %d\n", i, (long long)npoints, (int)H5Sget_select_type(region));
        npick[0] = (hsize_t)npoints;
        CHECK(msid = H5Screate_simple(1, npick, NULL));
        CHECK(H5Dread(obj, H5T_NATIVE_INT, msid, region, H5P_DEFAULT, picked));
        printf("region %d values:", i);
        for (hssize_t k = 0; k < npoints; k++)
            printf(" %d", picked[k]);
        printf("\n");
        CHECK(H5Sclose(msid));
        CHECK(H5Sclose(region));
        CHECK(H5Oclose(obj));
    }

    CHECK(aid = H5Aopen(fid, "object", H5P_DEFAULT));
    CHECK(H5Aread(aid, H5T_STD_REF_OBJ, &oback));
    CHECK(H5Aclose(aid));
    CHECK(H5Rget_obj_type2(fid, H5R_OBJECT, &oback, &otype));
    CHECK(n = H5Rget_name(fid, H5R_OBJECT, &oback, name, sizeof name));
    printf("object: type %d, name %s (%zd)\n", (int)otype, name, n);

    H5E_BEGIN_TRY
    {
        status = H5Rget_region(fid, H5R_DATASET_REGION, &back[2]);
        printf("the region of a null reference fails: %d\n", status < 0);
        obj = H5Rdereference2(fid, H5P_DEFAULT, H5R_DATASET_REGION, &back[2]);
        printf("opening a null region reference fails: %d\n", obj < 0);
    }
    H5E_END_TRY

    CHECK(H5Sclose(rsid));
    CHECK(H5Sclose(sid));
    CHECK(H5Fclose(fid));
    printf("PASS\n");
    return 0;
}
