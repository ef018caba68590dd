/*
 * plugin.c: the connector class HDF5 loads.
 *
 * Owns: the H5PL entry points, the callback table, the connector info (the
 * string after "h5pyvol" in HDF5_VOL_CONNECTOR, e.g. "memory;key=value"),
 * introspection, object tokens, and shared result converters.
 */
#include "pv.h"

#include <H5PLextern.h>
#include <ctype.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static H5VL_class_t pv_class_full; /* filled by H5PLget_plugin_info */

/* The connector info: which Python connector, with which options. */
typedef struct pv_info_t {
    char *spec;
} pv_info_t;

static pv_info_t *info_new(const char *spec)
{
    pv_info_t *info = calloc(1, sizeof *info);
    if (!info)
        return NULL;
    info->spec = strdup(spec ? spec : "");
    if (!info->spec) {
        free(info);
        return NULL;
    }
    return info;
}

static void *pv_info_copy(const void *info)
{
    return info_new(info ? ((const pv_info_t *)info)->spec : "");
}

static herr_t pv_info_cmp(int *cmp_value, const void *a, const void *b)
{
    const char *sa = a ? ((const pv_info_t *)a)->spec : "";
    const char *sb = b ? ((const pv_info_t *)b)->spec : "";
    *cmp_value     = strcmp(sa, sb);
    return 0;
}

static herr_t pv_info_free(void *info)
{
    if (info) {
        free(((pv_info_t *)info)->spec);
        free(info);
    }
    return 0;
}

static herr_t pv_info_to_str(const void *info, char **str)
{
    const char *spec = info ? ((const pv_info_t *)info)->spec : "";
    size_t      n    = strlen(spec) + 1;
    *str             = H5allocate_memory(n, 0);
    if (!*str)
        return -1;
    memcpy(*str, spec, n);
    return 0;
}

static herr_t pv_info_from_str(const char *str, void **info)
{
    /* Leading blanks come from "h5pyvol   memory;..." in the environment. */
    while (str && (*str == ' ' || *str == '\t'))
        str++;
    *info = info_new(str);
    return *info ? 0 : -1;
}

PyObject *pv_spec_from_fapl(hid_t fapl_id)
{
    void     *info = NULL;
    hid_t     conn = H5I_INVALID_HID;
    PyObject *spec;

    if (fapl_id < 0 || H5Pget_vol_id(fapl_id, &conn) < 0)
        return pv_str("");
    if (H5Pget_vol_info(fapl_id, &info) < 0 || !info) {
        H5VLclose(conn);
        return pv_str("");
    }
    spec = pv_str(((pv_info_t *)info)->spec);
    H5VLfree_connector_info(conn, info);
    H5VLclose(conn);
    return spec;
}

/* ------------------------------------------------------------------ */

static herr_t pv_initialize(hid_t vipl_id)
{
    (void)vipl_id;
    pv_compat_install();
    pv_analysis_register();
    pv_python_plugin_loaded();
    return 0;
}

static herr_t pv_terminate(void)
{
    pv_analysis_unregister();
    pv_python_terminate();
    return 0;
}

static herr_t pv_get_conn_cls(void *obj, H5VL_get_conn_lvl_t lvl, const H5VL_class_t **conn_cls)
{
    (void)obj;
    (void)lvl;
    *conn_cls = &pv_class_full;
    return 0;
}

static herr_t pv_get_cap_flags(const void *info, uint64_t *cap_flags)
{
    PyGILState_STATE gil;
    PyObject        *r;
    herr_t           ret = -1;

    if (pv_enter(&gil, __func__) < 0)
        return -1;
    r = pv_call(PV_FN_cap_flags, __func__, 1, pv_str(info ? ((const pv_info_t *)info)->spec : ""));
    if (r) {
        ret = pv_as_u64(r, cap_flags, __func__);
        Py_DECREF(r);
    }
    pv_leave(gil);
    return ret;
}

static herr_t pv_opt_query(void *obj, H5VL_subclass_t cls, int opt_type, uint64_t *flags)
{
    /* No optional (native-only) operation is offered, only our own. */
    (void)obj;
    *flags = pv_analysis_is_op(cls, opt_type) ? H5VL_OPT_QUERY_SUPPORTED | H5VL_OPT_QUERY_READ_DATA : 0;
    return 0;
}

static herr_t pv_optional(void *obj, H5VL_optional_args_t *args, hid_t dxpl_id, void **req)
{
    (void)obj;
    (void)dxpl_id;
    (void)req;
    pv_push_error(__func__, "h5pyvol: optional operation %d is not supported", args ? args->op_type : -1);
    return -1;
}

/* ------------------------------------------------------------------ */
/* Tokens: opaque bytes chosen by the Python connector.                */

static herr_t pv_token_cmp(void *obj, const H5O_token_t *t1, const H5O_token_t *t2, int *cmp_value)
{
    (void)obj;
    *cmp_value = memcmp(t1, t2, sizeof *t1);
    return 0;
}

static herr_t pv_token_to_str(void *obj, H5I_type_t obj_type, const H5O_token_t *token, char **token_str)
{
    (void)obj;
    (void)obj_type;
    *token_str = H5allocate_memory(2 * H5O_MAX_TOKEN_SIZE + 1, 0);
    if (!*token_str)
        return -1;
    for (int i = 0; i < H5O_MAX_TOKEN_SIZE; i++)
        snprintf(*token_str + 2 * i, 3, "%02x", token->__data[i]);
    return 0;
}

static herr_t pv_token_from_str(void *obj, H5I_type_t obj_type, const char *token_str, H5O_token_t *token)
{
    (void)obj;
    (void)obj_type;
    if (strlen(token_str) != 2 * H5O_MAX_TOKEN_SIZE) {
        pv_push_error(__func__, "h5pyvol: '%s' is not a token string", token_str);
        return -1;
    }
    for (int i = 0; i < H5O_MAX_TOKEN_SIZE; i++) {
        unsigned v;
        if (sscanf(token_str + 2 * i, "%2x", &v) != 1) {
            pv_push_error(__func__, "h5pyvol: '%s' is not a token string", token_str);
            return -1;
        }
        token->__data[i] = (uint8_t)v;
    }
    return 0;
}

/* ------------------------------------------------------------------ */

hid_t pv_register(PyObject *handle, H5I_type_t type)
{
    hid_t id;

    Py_INCREF(handle);
    id = H5VLwrap_register(handle, type);
    if (id < 0)
        Py_DECREF(handle);
    return id;
}

int pv_fill_oinfo(PyObject *t, H5O_info2_t *oinfo, const char *func)
{
    unsigned long long fileno, rc, num_attrs;
    long long          atime, mtime, ctime, btime;
    int                type;
    const char        *tok;
    Py_ssize_t         tok_len;

    if (!PyArg_ParseTuple(t, "Ky#iKLLLLK;object info", &fileno, &tok, &tok_len, &type, &rc, &atime, &mtime,
                          &ctime, &btime, &num_attrs)) {
        pv_push_python_error(func);
        return -1;
    }
    memset(oinfo, 0, sizeof *oinfo);
    oinfo->fileno = (unsigned long)fileno;
    memcpy(oinfo->token.__data, tok, (size_t)(tok_len < H5O_MAX_TOKEN_SIZE ? tok_len : H5O_MAX_TOKEN_SIZE));
    oinfo->type      = (H5O_type_t)type;
    oinfo->rc        = (unsigned)rc;
    oinfo->atime     = (time_t)atime;
    oinfo->mtime     = (time_t)mtime;
    oinfo->ctime     = (time_t)ctime;
    oinfo->btime     = (time_t)btime;
    oinfo->num_attrs = (hsize_t)num_attrs;
    return 0;
}

int pv_fill_linfo(PyObject *t, H5L_info2_t *linfo, const char *func)
{
    int       type, corder_valid, cset;
    long long corder;
    PyObject *target;

    if (!PyArg_ParseTuple(t, "ipLiO;link info", &type, &corder_valid, &corder, &cset, &target)) {
        pv_push_python_error(func);
        return -1;
    }
    memset(linfo, 0, sizeof *linfo);
    linfo->type         = (H5L_type_t)type;
    linfo->corder_valid = (hbool_t)corder_valid;
    linfo->corder       = (int64_t)corder;
    linfo->cset         = (H5T_cset_t)cset;
    if (linfo->type == H5L_TYPE_HARD)
        return pv_as_token(target, &linfo->u.token, func);
    {
        uint64_t size;
        if (pv_as_u64(target, &size, func) < 0)
            return -1;
        linfo->u.val_size = (size_t)size;
    }
    return 0;
}

/* ------------------------------------------------------------------ */

static const H5VL_class_t pv_class_base = {
    .version      = H5VL_VERSION,
    .value        = PV_CONNECTOR_VALUE,
    .name         = PV_CONNECTOR_NAME,
    .conn_version = PV_CONNECTOR_VERSION,
    .cap_flags    = H5VL_CAP_FLAG_NONE, /* the real flags come from the Python connector */
    .initialize   = pv_initialize,
    .terminate    = pv_terminate,
    .info_cls     = {sizeof(pv_info_t), pv_info_copy, pv_info_cmp, pv_info_free, pv_info_to_str,
                     pv_info_from_str},
    .wrap_cls     = {NULL, NULL, NULL, NULL, NULL},
    .attr_cls     = {0},
    .introspect_cls = {pv_get_conn_cls, pv_get_cap_flags, pv_opt_query},
    .request_cls    = {NULL, NULL, NULL, NULL, NULL, NULL},
    .blob_cls       = {NULL, NULL, NULL, NULL},
    .token_cls      = {pv_token_cmp, pv_token_to_str, pv_token_from_str},
    .optional       = pv_optional,
};

/* The tables live in their own files; HDF5 wants one struct, so they are
 * copied in when HDF5 asks for it. */

H5PL_type_t H5PLget_plugin_type(void)
{
    return H5PL_TYPE_VOL;
}

/* ------------------------------------------------------------------ */
/* One libhdf5 per process. When the plugin was built against another
 * libhdf5 than the program (or h5py) uses, loading the plugin maps a second
 * copy, and every call the plugin makes goes to a library that knows none
 * of the caller's ids ("not a property list"). Then HDF5 gets a class whose
 * file create and open fail with that explanation: no Python, no call into
 * the other copy. (Failing to load instead makes HDF5 fall back to native
 * files silently, and HDF5 2.0 crashes after a failed HDF5_VOL_CONNECTOR.) */

typedef struct {
    int  count;
    char paths[2][1024];
} pv_libhdf5_seen_t;

static pv_libhdf5_seen_t pv_libhdf5_seen;

/* libhdf5.so[.N...] or an h5py wheel's libhdf5-<hex>.so[...]; not
 * libhdf5_hl, libhdf5_tools or libhdf5_test. */
static int is_libhdf5(const char *path)
{
    const char *base = strrchr(path, '/');
    const char *p    = base ? base + 1 : path;

    if (strncmp(p, "libhdf5", 7) != 0)
        return 0;
    p += 7;
    if (*p == '-') {
        const char *hex = ++p;
        while (isxdigit((unsigned char)*p))
            p++;
        if (p == hex)
            return 0;
    }
    return strncmp(p, ".so", 3) == 0;
}

static int note_libhdf5(struct dl_phdr_info *info, size_t size, void *data)
{
    pv_libhdf5_seen_t *seen = data;
    (void)size;
    if (info->dlpi_name && is_libhdf5(info->dlpi_name)) {
        if (seen->count < 2)
            snprintf(seen->paths[seen->count], sizeof seen->paths[0], "%s", info->dlpi_name);
        seen->count++;
    }
    return 0;
}

static void report_two_libhdf5(void)
{
    fprintf(stderr,
            "h5pyvol: refusing to start: two copies of libhdf5 are loaded in this process,\n"
            "    %s\n    %s\n"
            "  The h5pyvol plugin was built against one and the program (or h5py) uses the other;\n"
            "  HDF5 would then fail with errors like \"not a property list\". Run `h5pyvol info`, and\n"
            "  reinstall h5pyvol against the libhdf5 the program uses (README: Installation).\n",
            pv_libhdf5_seen.paths[0], pv_libhdf5_seen.paths[1]);
}

static void *refused_file_create(const char *name, unsigned flags, hid_t fcpl_id, hid_t fapl_id, hid_t dxpl_id,
                                 void **req)
{
    (void)name, (void)flags, (void)fcpl_id, (void)fapl_id, (void)dxpl_id, (void)req;
    report_two_libhdf5();
    return NULL;
}

static void *refused_file_open(const char *name, unsigned flags, hid_t fapl_id, hid_t dxpl_id, void **req)
{
    (void)name, (void)flags, (void)fapl_id, (void)dxpl_id, (void)req;
    report_two_libhdf5();
    return NULL;
}

static herr_t refused_cap_flags(const void *info, uint64_t *cap_flags)
{
    (void)info;
    *cap_flags = H5VL_CAP_FLAG_NONE;
    return 0;
}

static H5VL_class_t pv_class_refused;

static herr_t refused_get_conn_cls(void *obj, H5VL_get_conn_lvl_t lvl, const H5VL_class_t **conn_cls)
{
    (void)obj, (void)lvl;
    *conn_cls = &pv_class_refused;
    return 0;
}

const void *H5PLget_plugin_info(void)
{
    pv_libhdf5_seen.count = 0;
    dl_iterate_phdr(note_libhdf5, &pv_libhdf5_seen);
    if (pv_libhdf5_seen.count > 1) {
        report_two_libhdf5();
        pv_class_refused                              = pv_class_base;
        pv_class_refused.initialize                   = NULL;
        pv_class_refused.terminate                    = NULL;
        pv_class_refused.introspect_cls.get_conn_cls  = refused_get_conn_cls;
        pv_class_refused.introspect_cls.get_cap_flags = refused_cap_flags;
        pv_class_refused.optional                     = NULL;
        pv_class_refused.file_cls.create              = refused_file_create;
        pv_class_refused.file_cls.open                = refused_file_open;
        return &pv_class_refused;
    }
    pv_class_full              = pv_class_base;
    pv_class_full.attr_cls     = pv_attr_cls;
    pv_class_full.blob_cls     = pv_blob_cls;
    pv_class_full.dataset_cls  = pv_dataset_cls;
    pv_class_full.datatype_cls = pv_datatype_cls;
    pv_class_full.file_cls     = pv_file_cls;
    pv_class_full.group_cls    = pv_group_cls;
    pv_class_full.link_cls     = pv_link_cls;
    pv_class_full.object_cls   = pv_object_cls;
    return &pv_class_full;
}
