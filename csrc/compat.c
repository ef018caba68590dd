/*
 * compat.c: HDF5's 1.10-era link and object calls, for objects of this connector.
 *
 * h5py (3.x) still calls H5Lget_info1, H5Literate1, H5Ovisit1, H5Oget_info1
 * and their _by_name/_by_idx forms; HDF5 refuses them for every connector but
 * the native one, so group iteration, visit() and get() would fail. (It also
 * calls the 1.10 reference functions, served here too.) When the
 * plugin loads, it points the already-loaded programs' and libraries' own
 * import slots (GOT entries) for these functions at the versions here. They
 * answer objects of this connector through the current (v2/v3) calls and hand
 * anything else to HDF5's own functions, so native files behave as before.
 * H5PYVOL_NO_COMPAT=1 turns this off.
 *
 * An old-style object address is the first 8 bytes of the object's token.
 * libhdf5_hl's dimension scales get the reference functions too, and are
 * told our objects are native when such an address can name them.
 */
#define _GNU_SOURCE
#include "pv.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Our own references to these names stay bound to HDF5's functions. */
#define REAL(fn) __typeof__(&fn) real_##fn = &fn;

static int is_ours(hid_t id)
{
    char    name[16] = "";
    ssize_t n        = -1;

    H5E_BEGIN_TRY
    {
        n = H5VLget_connector_name(id, name, sizeof name);
    }
    H5E_END_TRY
    return n > 0 && strcmp(name, PV_CONNECTOR_NAME) == 0;
}

static haddr_t token_addr(const H5O_token_t *token)
{
    haddr_t addr;
    memcpy(&addr, token->__data, sizeof addr);
    return addr;
}

static void linfo_v1(const H5L_info2_t *in, H5L_info1_t *out)
{
    memset(out, 0, sizeof *out);
    out->type         = in->type;
    out->corder_valid = in->corder_valid;
    out->corder       = in->corder;
    out->cset         = in->cset;
    if (in->type == H5L_TYPE_HARD)
        out->u.address = token_addr(&in->u.token);
    else
        out->u.val_size = in->u.val_size;
}

static void oinfo_v1(const H5O_info2_t *in, H5O_info1_t *out)
{
    memset(out, 0, sizeof *out);
    out->fileno    = in->fileno;
    out->addr      = token_addr(&in->token);
    out->type      = in->type;
    out->rc        = in->rc;
    out->atime     = in->atime;
    out->mtime     = in->mtime;
    out->ctime     = in->ctime;
    out->btime     = in->btime;
    out->num_attrs = in->num_attrs;
}

/* ---- links ---- */

typedef struct {
    H5L_iterate1_t op;
    void          *data;
} link_shim_t;

static herr_t link_shim(hid_t group, const char *name, const H5L_info2_t *info, void *ctx)
{
    link_shim_t *shim = ctx;
    H5L_info1_t  old;
    linfo_v1(info, &old);
    return shim->op(group, name, &old, shim->data);
}

static herr_t compat_H5Lget_info1(hid_t loc_id, const char *name, H5L_info1_t *linfo, hid_t lapl_id)
{
    H5L_info2_t info;
    REAL(H5Lget_info1);
    if (!is_ours(loc_id))
        return real_H5Lget_info1(loc_id, name, linfo, lapl_id);
    if (H5Lget_info2(loc_id, name, &info, lapl_id) < 0)
        return -1;
    if (linfo)
        linfo_v1(&info, linfo);
    return 0;
}

static herr_t compat_H5Lget_info_by_idx1(hid_t loc_id, const char *group_name, H5_index_t idx_type,
                                     H5_iter_order_t order, hsize_t n, H5L_info1_t *linfo, hid_t lapl_id)
{
    H5L_info2_t info;
    REAL(H5Lget_info_by_idx1);
    if (!is_ours(loc_id))
        return real_H5Lget_info_by_idx1(loc_id, group_name, idx_type, order, n, linfo, lapl_id);
    if (H5Lget_info_by_idx2(loc_id, group_name, idx_type, order, n, &info, lapl_id) < 0)
        return -1;
    if (linfo)
        linfo_v1(&info, linfo);
    return 0;
}

static herr_t compat_H5Literate1(hid_t grp_id, H5_index_t idx_type, H5_iter_order_t order, hsize_t *idx,
                             H5L_iterate1_t op, void *op_data)
{
    link_shim_t shim = {op, op_data};
    REAL(H5Literate1);
    if (!is_ours(grp_id))
        return real_H5Literate1(grp_id, idx_type, order, idx, op, op_data);
    return H5Literate2(grp_id, idx_type, order, idx, link_shim, &shim);
}

static herr_t compat_H5Literate_by_name1(hid_t loc_id, const char *group_name, H5_index_t idx_type,
                                     H5_iter_order_t order, hsize_t *idx, H5L_iterate1_t op, void *op_data,
                                     hid_t lapl_id)
{
    link_shim_t shim = {op, op_data};
    REAL(H5Literate_by_name1);
    if (!is_ours(loc_id))
        return real_H5Literate_by_name1(loc_id, group_name, idx_type, order, idx, op, op_data, lapl_id);
    return H5Literate_by_name2(loc_id, group_name, idx_type, order, idx, link_shim, &shim, lapl_id);
}

static herr_t compat_H5Lvisit1(hid_t grp_id, H5_index_t idx_type, H5_iter_order_t order, H5L_iterate1_t op,
                           void *op_data)
{
    link_shim_t shim = {op, op_data};
    REAL(H5Lvisit1);
    if (!is_ours(grp_id))
        return real_H5Lvisit1(grp_id, idx_type, order, op, op_data);
    return H5Lvisit2(grp_id, idx_type, order, link_shim, &shim);
}

static herr_t compat_H5Lvisit_by_name1(hid_t loc_id, const char *group_name, H5_index_t idx_type,
                                   H5_iter_order_t order, H5L_iterate1_t op, void *op_data, hid_t lapl_id)
{
    link_shim_t shim = {op, op_data};
    REAL(H5Lvisit_by_name1);
    if (!is_ours(loc_id))
        return real_H5Lvisit_by_name1(loc_id, group_name, idx_type, order, op, op_data, lapl_id);
    return H5Lvisit_by_name2(loc_id, group_name, idx_type, order, link_shim, &shim, lapl_id);
}

/* ---- objects ---- */

typedef struct {
    H5O_iterate1_t op;
    void          *data;
} object_shim_t;

static herr_t object_shim(hid_t obj, const char *name, const H5O_info2_t *info, void *ctx)
{
    object_shim_t *shim = ctx;
    H5O_info1_t    old;
    oinfo_v1(info, &old);
    return shim->op(obj, name, &old, shim->data);
}

static herr_t compat_H5Oget_info1(hid_t loc_id, H5O_info1_t *oinfo)
{
    H5O_info2_t info;
    REAL(H5Oget_info1);
    if (!is_ours(loc_id))
        return real_H5Oget_info1(loc_id, oinfo);
    if (H5Oget_info3(loc_id, &info, H5O_INFO_ALL) < 0)
        return -1;
    oinfo_v1(&info, oinfo);
    return 0;
}

static herr_t compat_H5Oget_info_by_name1(hid_t loc_id, const char *name, H5O_info1_t *oinfo, hid_t lapl_id)
{
    H5O_info2_t info;
    REAL(H5Oget_info_by_name1);
    if (!is_ours(loc_id))
        return real_H5Oget_info_by_name1(loc_id, name, oinfo, lapl_id);
    if (H5Oget_info_by_name3(loc_id, name, &info, H5O_INFO_ALL, lapl_id) < 0)
        return -1;
    oinfo_v1(&info, oinfo);
    return 0;
}

static herr_t compat_H5Oget_info_by_idx1(hid_t loc_id, const char *group_name, H5_index_t idx_type,
                                     H5_iter_order_t order, hsize_t n, H5O_info1_t *oinfo, hid_t lapl_id)
{
    H5O_info2_t info;
    REAL(H5Oget_info_by_idx1);
    if (!is_ours(loc_id))
        return real_H5Oget_info_by_idx1(loc_id, group_name, idx_type, order, n, oinfo, lapl_id);
    if (H5Oget_info_by_idx3(loc_id, group_name, idx_type, order, n, &info, H5O_INFO_ALL, lapl_id) < 0)
        return -1;
    oinfo_v1(&info, oinfo);
    return 0;
}

static herr_t compat_H5Ovisit1(hid_t obj_id, H5_index_t idx_type, H5_iter_order_t order, H5O_iterate1_t op,
                           void *op_data)
{
    object_shim_t shim = {op, op_data};
    REAL(H5Ovisit1);
    if (!is_ours(obj_id))
        return real_H5Ovisit1(obj_id, idx_type, order, op, op_data);
    return H5Ovisit3(obj_id, idx_type, order, object_shim, &shim, H5O_INFO_ALL);
}

static herr_t compat_H5Ovisit_by_name1(hid_t loc_id, const char *obj_name, H5_index_t idx_type,
                                   H5_iter_order_t order, H5O_iterate1_t op, void *op_data, hid_t lapl_id)
{
    object_shim_t shim = {op, op_data};
    REAL(H5Ovisit_by_name1);
    if (!is_ours(loc_id))
        return real_H5Ovisit_by_name1(loc_id, obj_name, idx_type, order, op, op_data, lapl_id);
    return H5Ovisit_by_name3(loc_id, obj_name, idx_type, order, object_shim, &shim, H5O_INFO_ALL, lapl_id);
}

/* ---- old-style references ---- */

/* HDF5 1.10-style references, which h5py uses (its Reference, RegionReference
 * and dimension scales). HDF5 answers them only for native files, and its
 * refusal names H5E_VOL as a *minor* code: clearing that entry later drops a
 * reference to the H5E_VOL message until it is freed, and every error stack
 * naming it then fails to print. So for our objects they are served here.
 *
 * An object reference (hobj_ref_t, 8 bytes) holds the first 8 bytes of the
 * object's token, which the bridge makes as a length byte and the
 * connector's token: a token fits when nothing but zeros follows those 8
 * bytes (`fits_object_ref`), so tokens of up to 7 bytes, and 8-byte tokens
 * ending in a zero byte (a little-endian counter below 2^56, as the S3 and
 * RADOS connectors make), whose last byte comes back from the length.
 *
 * A region reference (hdset_reg_ref_t, 12 bytes) names a blob of the file
 * (the store HDF5 1.12-style references use, blob.c), which holds "PVR1",
 * the dataset's 16-byte token and the selection as H5Sencode2 makes it. The
 * reference is the length of the blob's key (1 to 11 bytes), the key, then
 * as much of a checksum of the blob as fits in the bytes left (zeros past
 * its 4 bytes): a reference taken to another file, whose blob keys may be
 * the same, is then refused instead of read as some other region. A zeroed
 * reference has key length 0: the null reference. */
#define REGION_MAGIC "PVR1"
#define REGION_HEAD (sizeof REGION_MAGIC - 1 + sizeof(H5O_token_t))
#define REGION_KEY_MAX (sizeof(hdset_reg_ref_t) - 1)

static int reference_error(const char *func, const char *msg)
{
    pv_push_error(func, "h5pyvol: %s", msg);
    return -1;
}

static int known_ref_type(H5R_type_t ref_type, const char *func)
{
    if (ref_type == H5R_OBJECT || ref_type == H5R_DATASET_REGION)
        return 0;
    pv_push_error(func, "h5pyvol: %d is not an HDF5 1.10-style reference type (H5R_OBJECT or H5R_DATASET_REGION)",
                  (int)ref_type);
    return -1;
}

/* Whether a token (16-byte form) fits an hobj_ref_t: see above. */
static int fits_object_ref(const H5O_token_t *token)
{
    if (token->__data[0] == 0)
        return 0;
    for (size_t i = sizeof(hobj_ref_t); i < sizeof token->__data; i++)
        if (token->__data[i] != 0)
            return 0;
    return 1;
}

static int ref_to_token(const void *ref, H5O_token_t *token, const char *func)
{
    memset(token, 0, sizeof *token);
    memcpy(token->__data, ref, sizeof(hobj_ref_t));
    if (token->__data[0] == 0 || token->__data[0] >= sizeof token->__data)
        return reference_error(func, "not a valid object reference (null or not made by h5pyvol)");
    return 0;
}

/* 32-bit FNV-1a: a check that a blob is the one a reference was made for. */
static uint32_t region_checksum(const unsigned char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static void region_check_bytes(const unsigned char *blob, size_t size, unsigned char *out, size_t n)
{
    uint32_t h = region_checksum(blob, size);
    for (size_t i = 0; i < n; i++)
        out[i] = i < 4 ? (unsigned char)(h >> (8 * i)) : 0;
}

/* The VOL object of loc (a bridge handle: the blob store is its file's).
 * An HDF5 call clears the error stack: none may follow a failed blob call. */
static void *region_file(hid_t loc, const char *func)
{
    void *obj = H5VLobject(loc);
    if (!obj)
        pv_push_error(func, "h5pyvol: no connector object for this location");
    return obj;
}

static herr_t region_create(unsigned char *ref, hid_t loc, const char *name, hid_t space, const char *func)
{
    H5O_info2_t    info;
    unsigned char  blob_id[H5VL_MAX_BLOB_ID_SIZE] = {0};
    unsigned char *blob = NULL;
    size_t         enc  = 0, key;
    void          *file;
    herr_t         ret = -1;

    if (H5Iget_type(space) != H5I_DATASPACE)
        return reference_error(func, "a region reference needs a dataspace with the selection");
    if (H5Oget_info_by_name3(loc, name, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0 ||
        H5Sencode2(space, NULL, &enc, H5P_DEFAULT) < 0)
        return -1;
    if (!(blob = malloc(REGION_HEAD + enc)))
        return reference_error(func, "out of memory for a region reference");
    memcpy(blob, REGION_MAGIC, sizeof REGION_MAGIC - 1);
    memcpy(blob + sizeof REGION_MAGIC - 1, info.token.__data, sizeof info.token.__data);
    if (H5Sencode2(space, blob + REGION_HEAD, &enc, H5P_DEFAULT) < 0 || !(file = region_file(loc, func)))
        goto done;
    if (pv_blob_cls.put(file, blob, REGION_HEAD + enc, blob_id, NULL) < 0)
        goto done;
    key = blob_id[0];
    if (key == 0 || key > REGION_KEY_MAX) {
        pv_push_error(func,
                      "h5pyvol: this connector's blob keys (%zu bytes) are too long for an HDF5 1.10-style region "
                      "reference (at most %zu bytes)",
                      key, (size_t)REGION_KEY_MAX);
        goto done;
    }
    memcpy(ref, blob_id, 1 + key);
    region_check_bytes(blob, REGION_HEAD + enc, ref + 1 + key, REGION_KEY_MAX - key);
    ret = 0;
done:
    free(blob);
    return ret;
}

/* The blob a region reference names, checked: a malloc'd copy in *blob (the
 * caller frees it) of *size >= REGION_HEAD bytes. */
static herr_t region_blob(hid_t loc, const unsigned char *ref, unsigned char **blob, size_t *size, const char *func)
{
    unsigned char blob_id[H5VL_MAX_BLOB_ID_SIZE] = {0};
    unsigned char check[REGION_KEY_MAX];
    size_t        key = ref[0];
    void         *file, *buf = NULL;

    *blob = NULL;
    if (key == 0)
        return reference_error(func, "a null region reference names no region");
    if (key > REGION_KEY_MAX)
        return reference_error(func, "not a valid region reference (not made by h5pyvol?)");
    memcpy(blob_id, ref, 1 + key);
    if (!(file = region_file(loc, func)))
        return -1;
    if (pv_blob_fetch(file, blob_id, &buf, size) < 0)
        return reference_error(func, "the region reference's data is not in this file (a reference from another "
                                     "file, or to data since deleted?)");
    *blob = buf;
    region_check_bytes(*blob, *size, check, REGION_KEY_MAX - key);
    if (*size < REGION_HEAD || memcmp(*blob, REGION_MAGIC, sizeof REGION_MAGIC - 1) != 0 ||
        memcmp(check, ref + 1 + key, REGION_KEY_MAX - key) != 0) {
        free(*blob);
        *blob = NULL;
        return reference_error(func, "this file holds other data under the region reference's key (a reference "
                                     "from another file?)");
    }
    return 0;
}

static herr_t compat_H5Rcreate(void *ref, hid_t loc_id, const char *name, H5R_type_t ref_type, hid_t space_id)
{
    REAL(H5Rcreate);
    H5O_info2_t info;

    if (!is_ours(loc_id))
        return real_H5Rcreate(ref, loc_id, name, ref_type, space_id);
    H5Eclear2(H5E_DEFAULT);
    if (!ref || !name)
        return reference_error(__func__, "no reference buffer or object name");
    if (known_ref_type(ref_type, __func__) < 0)
        return -1;
    if (ref_type == H5R_DATASET_REGION) {
        memset(ref, 0, sizeof(hdset_reg_ref_t));
        return region_create(ref, loc_id, name, space_id, __func__);
    }
    if (H5Oget_info_by_name3(loc_id, name, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0)
        return -1;
    if (!fits_object_ref(&info.token)) {
        pv_push_error(__func__,
                      "h5pyvol: this connector's object tokens (%u bytes) are too long for an HDF5 1.10-style "
                      "object reference (at most 7 bytes, or 8 ending in a zero byte)",
                      (unsigned)info.token.__data[0]);
        return -1;
    }
    memcpy(ref, info.token.__data, sizeof(hobj_ref_t));
    return 0;
}

static hid_t compat_H5Rdereference2(hid_t obj_id, hid_t oapl_id, H5R_type_t ref_type, const void *ref)
{
    REAL(H5Rdereference2);
    H5O_token_t    token;
    unsigned char *blob;
    size_t         size;

    if (!is_ours(obj_id))
        return real_H5Rdereference2(obj_id, oapl_id, ref_type, ref);
    H5Eclear2(H5E_DEFAULT);
    if (!ref)
        return reference_error(__func__, "no reference given");
    if (known_ref_type(ref_type, __func__) < 0)
        return H5I_INVALID_HID;
    if (ref_type == H5R_DATASET_REGION) {
        if (region_blob(obj_id, ref, &blob, &size, __func__) < 0)
            return H5I_INVALID_HID;
        memcpy(token.__data, blob + sizeof REGION_MAGIC - 1, sizeof token.__data);
        free(blob);
    }
    else if (ref_to_token(ref, &token, __func__) < 0)
        return H5I_INVALID_HID;
    return H5Oopen_by_token(obj_id, token);
}

static herr_t compat_H5Rget_obj_type2(hid_t id, H5R_type_t ref_type, const void *ref, H5O_type_t *obj_type)
{
    REAL(H5Rget_obj_type2);
    H5O_info2_t info;
    hid_t       obj;
    herr_t      ret;

    if (!is_ours(id))
        return real_H5Rget_obj_type2(id, ref_type, ref, obj_type);
    if ((obj = compat_H5Rdereference2(id, H5P_DEFAULT, ref_type, ref)) < 0)
        return -1;
    ret = H5Oget_info3(obj, &info, H5O_INFO_BASIC);
    H5Oclose(obj);
    if (ret >= 0 && obj_type)
        *obj_type = info.type;
    return ret;
}

static ssize_t compat_H5Rget_name(hid_t loc_id, H5R_type_t ref_type, const void *ref, char *name, size_t size)
{
    REAL(H5Rget_name);
    hid_t   obj;
    ssize_t n;

    if (!is_ours(loc_id))
        return real_H5Rget_name(loc_id, ref_type, ref, name, size);
    if ((obj = compat_H5Rdereference2(loc_id, H5P_DEFAULT, ref_type, ref)) < 0)
        return -1;
    n = H5Iget_name(obj, name, size);
    H5Oclose(obj);
    return n;
}

static hid_t compat_H5Rget_region(hid_t dataset, H5R_type_t ref_type, const void *ref)
{
    REAL(H5Rget_region);
    unsigned char *blob;
    size_t         size;
    hid_t          space;

    if (!is_ours(dataset))
        return real_H5Rget_region(dataset, ref_type, ref);
    H5Eclear2(H5E_DEFAULT);
    if (ref_type != H5R_DATASET_REGION || !ref) {
        reference_error(__func__, "H5Rget_region needs a region reference (H5R_DATASET_REGION)");
        return H5I_INVALID_HID;
    }
    if (region_blob(dataset, ref, &blob, &size, __func__) < 0)
        return H5I_INVALID_HID;
    space = H5Sdecode(blob + REGION_HEAD);
    free(blob);
    if (space < 0)
        reference_error(__func__, "the region reference's selection does not decode (a corrupt blob?)");
    return space;
}

/* ---- dimension scales ---- */

/* HDF5's dimension scales (H5DS, in libhdf5_hl) store 1.12-style references
 * for objects of any connector but the native one, and h5py has no numpy
 * type for those: it could not read a dimension scale's attributes. For
 * objects of this connector whose tokens fit a 1.10-style reference (served
 * above: fits_object_ref), H5DS is told "native" and stores what it stores
 * in native files.
 * Patched in libhdf5_hl only. */
static herr_t compat_H5VLobject_is_native(hid_t obj_id, hbool_t *is_native)
{
    REAL(H5VLobject_is_native);
    H5O_info2_t info;
    herr_t      got = -1;

    if (!is_native || !is_ours(obj_id))
        return real_H5VLobject_is_native(obj_id, is_native);
    H5E_BEGIN_TRY
    {
        got = H5Oget_info3(obj_id, &info, H5O_INFO_BASIC);
    }
    H5E_END_TRY
    if (got < 0 || !fits_object_ref(&info.token))
        return real_H5VLobject_is_native(obj_id, is_native);
    *is_native = true;
    return 0;
}

/* ---- pointing other objects' import slots here ---- */

#if defined(__x86_64__)
#define PV_R_JUMP_SLOT R_X86_64_JUMP_SLOT
#define PV_R_GLOB_DAT R_X86_64_GLOB_DAT
#elif defined(__aarch64__)
#define PV_R_JUMP_SLOT R_AARCH64_JUMP_SLOT
#define PV_R_GLOB_DAT R_AARCH64_GLOB_DAT
#endif

/* Where a hook goes: every loaded object but HDF5's own libraries; those
 * and libhdf5_hl (whose H5DS calls the 1.10 reference functions); or
 * libhdf5_hl only. */
enum { PV_OUTSIDE_HDF5, PV_ALSO_HL, PV_HL_ONLY };

static const struct {
    const char *name;
    void       *fn;
    int         where;
} hooks[] = {
    {"H5VLobject_is_native", (void *)compat_H5VLobject_is_native, PV_HL_ONLY},
    {"H5Lget_info1", (void *)compat_H5Lget_info1, PV_OUTSIDE_HDF5},
    {"H5Lget_info_by_idx1", (void *)compat_H5Lget_info_by_idx1, PV_OUTSIDE_HDF5},
    {"H5Literate1", (void *)compat_H5Literate1, PV_OUTSIDE_HDF5},
    {"H5Literate_by_name1", (void *)compat_H5Literate_by_name1, PV_OUTSIDE_HDF5},
    {"H5Lvisit1", (void *)compat_H5Lvisit1, PV_OUTSIDE_HDF5},
    {"H5Lvisit_by_name1", (void *)compat_H5Lvisit_by_name1, PV_OUTSIDE_HDF5},
    {"H5Oget_info1", (void *)compat_H5Oget_info1, PV_OUTSIDE_HDF5},
    {"H5Oget_info_by_name1", (void *)compat_H5Oget_info_by_name1, PV_OUTSIDE_HDF5},
    {"H5Oget_info_by_idx1", (void *)compat_H5Oget_info_by_idx1, PV_OUTSIDE_HDF5},
    {"H5Ovisit1", (void *)compat_H5Ovisit1, PV_OUTSIDE_HDF5},
    {"H5Ovisit_by_name1", (void *)compat_H5Ovisit_by_name1, PV_OUTSIDE_HDF5},
    {"H5Rcreate", (void *)compat_H5Rcreate, PV_ALSO_HL},
    {"H5Rdereference2", (void *)compat_H5Rdereference2, PV_ALSO_HL},
    {"H5Rget_obj_type2", (void *)compat_H5Rget_obj_type2, PV_ALSO_HL},
    {"H5Rget_region", (void *)compat_H5Rget_region, PV_ALSO_HL},
    {"H5Rget_name", (void *)compat_H5Rget_name, PV_ALSO_HL},
};

#ifdef PV_R_JUMP_SLOT
static void *hook_for(const char *name, int in_hl)
{
    for (size_t i = 0; i < sizeof hooks / sizeof hooks[0]; i++)
        if (strcmp(name, hooks[i].name) == 0)
            return (in_hl ? hooks[i].where != PV_OUTSIDE_HDF5 : hooks[i].where != PV_HL_ONLY) ? hooks[i].fn : NULL;
    return NULL;
}

/* glibc has already rebased most dynamic-section pointers; some loaders don't. */
static uintptr_t dyn_ptr(uintptr_t value, uintptr_t base)
{
    return value < base ? value + base : value;
}

static void patch_slot(void **slot, void *fn, const struct dl_phdr_info *info)
{
    long      page = sysconf(_SC_PAGESIZE);
    uintptr_t start = (uintptr_t)slot & ~(uintptr_t)(page - 1);
    int       relro = 0;

    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_GNU_RELRO && (uintptr_t)slot >= lo && (uintptr_t)slot < lo + ph->p_memsz)
            relro = 1;
    }
    if (relro && mprotect((void *)start, (size_t)page, PROT_READ | PROT_WRITE) != 0)
        return;
    *slot = fn;
    if (relro)
        mprotect((void *)start, (size_t)page, PROT_READ);
}

static void patch_relocs(const ElfW(Rela) *rel, size_t size, const ElfW(Sym) *symtab, const char *strtab,
                         const struct dl_phdr_info *info, int in_hl)
{
    for (size_t i = 0; i < size / sizeof *rel; i++) {
        unsigned long type = ELF64_R_TYPE(rel[i].r_info);
        void         *fn;
        if (type != PV_R_JUMP_SLOT && type != PV_R_GLOB_DAT)
            continue;
        fn = hook_for(strtab + symtab[ELF64_R_SYM(rel[i].r_info)].st_name, in_hl);
        if (fn)
            patch_slot((void **)(info->dlpi_addr + rel[i].r_offset), fn, info);
    }
}

static int patch_object(struct dl_phdr_info *info, size_t size, void *self_base)
{
    const ElfW(Dyn) *dyn = NULL;
    const ElfW(Sym) *symtab = NULL;
    const char      *strtab = NULL;
    const ElfW(Rela) *jmprel = NULL, *rela = NULL;
    size_t            jmprel_size = 0, rela_size = 0;
    uintptr_t         base = info->dlpi_addr;

    (void)size;
    int              in_hl;

    /* Leave HDF5 itself (but for libhdf5_hl's few hooks) and this plugin
     * alone; skip the vDSO. */
    if ((void *)base == self_base || !info->dlpi_name || strstr(info->dlpi_name, "linux-vdso"))
        return 0;
    in_hl = strstr(info->dlpi_name, "libhdf5_hl") != NULL;
    if (strstr(info->dlpi_name, "libhdf5") && !in_hl)
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
            dyn = (const ElfW(Dyn) *)(base + info->dlpi_phdr[i].p_vaddr);
    if (!dyn)
        return 0;
    for (; dyn->d_tag != DT_NULL; dyn++) {
        switch (dyn->d_tag) {
            case DT_SYMTAB: symtab = (const ElfW(Sym) *)dyn_ptr(dyn->d_un.d_ptr, base); break;
            case DT_STRTAB: strtab = (const char *)dyn_ptr(dyn->d_un.d_ptr, base); break;
            case DT_JMPREL: jmprel = (const ElfW(Rela) *)dyn_ptr(dyn->d_un.d_ptr, base); break;
            case DT_PLTRELSZ: jmprel_size = dyn->d_un.d_val; break;
            case DT_RELA: rela = (const ElfW(Rela) *)dyn_ptr(dyn->d_un.d_ptr, base); break;
            case DT_RELASZ: rela_size = dyn->d_un.d_val; break;
            default: break;
        }
    }
    if (!symtab || !strtab)
        return 0;
    if (jmprel)
        patch_relocs(jmprel, jmprel_size, symtab, strtab, info, in_hl);
    if (rela)
        patch_relocs(rela, rela_size, symtab, strtab, info, in_hl);
    return 0;
}

static int patch_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    return patch_object(info, size, data);
}
#endif

void pv_compat_install(void)
{
    const char *off = getenv("H5PYVOL_NO_COMPAT");
    Dl_info     self;

    if (off && *off && strcmp(off, "0") != 0)
        return;
#ifdef PV_R_JUMP_SLOT
    if (dladdr((void *)&pv_compat_install, &self) && self.dli_fbase)
        dl_iterate_phdr(patch_cb, self.dli_fbase);
#else
    (void)self;
#endif
}
