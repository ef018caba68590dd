/*
 * file.c: the H5F callbacks (create, open, get, specific, close).
 */
#include "pv.h"

#include <H5VLnative.h>
#include <string.h>

static void *pv_file_create(const char *name, unsigned flags, hid_t fcpl_id, hid_t fapl_id, hid_t dxpl_id,
                            void **req)
{
    PyGILState_STATE gil;
    PyObject        *h;

    (void)dxpl_id;
    (void)req;
    if (pv_enter(&gil, __func__) < 0)
        return NULL;
    h = pv_call(PV_FN_file_create, __func__, 5, pv_spec_from_fapl(fapl_id), pv_str(name), pv_uint(flags),
                pv_hid(fcpl_id), pv_hid(fapl_id));
    pv_leave(gil);
    return h;
}

static void *pv_file_open(const char *name, unsigned flags, hid_t fapl_id, hid_t dxpl_id, void **req)
{
    PyGILState_STATE gil;
    PyObject        *h;

    (void)dxpl_id;
    (void)req;
    if (pv_enter(&gil, __func__) < 0)
        return NULL;
    h = pv_call(PV_FN_file_open, __func__, 4, pv_spec_from_fapl(fapl_id), pv_str(name), pv_uint(flags),
                pv_hid(fapl_id));
    pv_leave(gil);
    return h;
}

/* Open ids of our connector that belong to one file (H5Fget_obj_count/ids). */
typedef struct {
    PyObject *file;
    int       local; /* H5F_OBJ_LOCAL: only objects opened through this file id */
    size_t    count;
    size_t    max;   /* 0: count only */
    hid_t    *ids;
    int       failed;
} obj_scan_t;

static int obj_scan_cb(hid_t id, void *udata)
{
    obj_scan_t *scan = udata;
    char        conn[16] = "";
    ssize_t     n        = -1;
    void       *obj;
    PyObject   *same;

    H5E_BEGIN_TRY
    {
        n = H5VLget_connector_name(id, conn, sizeof conn);
    }
    H5E_END_TRY
    /* Skip ids of other connectors, and transient datatypes (no connector). */
    if (n < 0 || strcmp(conn, PV_CONNECTOR_NAME) != 0 || !(obj = H5VLobject(id)))
        return 0;
    same = pv_call(PV_FN_same_file, "H5Fget_obj_ids", 3, pv_ref(obj), pv_ref(scan->file),
                   PyBool_FromLong(scan->local));
    if (!same) {
        scan->failed = 1;
        return -1;
    }
    if (PyObject_IsTrue(same) == 1) {
        if (scan->ids)
            scan->ids[scan->count] = id;
        scan->count++;
    }
    Py_DECREF(same);
    return (scan->max && scan->count >= scan->max) ? 1 : 0;
}

static herr_t scan_objects(PyObject *file, unsigned types, size_t max, hid_t *ids, size_t *count)
{
    static const struct {
        unsigned   flag;
        H5I_type_t type;
    } kinds[] = {{H5F_OBJ_FILE, H5I_FILE},
                 {H5F_OBJ_DATASET, H5I_DATASET},
                 {H5F_OBJ_GROUP, H5I_GROUP},
                 {H5F_OBJ_DATATYPE, H5I_DATATYPE},
                 {H5F_OBJ_ATTR, H5I_ATTR}};
    obj_scan_t scan = {file, (types & H5F_OBJ_LOCAL) != 0, 0, max, ids, 0};

    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        if (!(types & kinds[k].flag))
            continue;
        if (H5Iiterate(kinds[k].type, obj_scan_cb, &scan) < 0 || scan.failed)
            return -1;
        if (scan.max && scan.count >= scan.max)
            break;
    }
    *count = scan.count;
    return 0;
}

static herr_t pv_file_get(void *obj, H5VL_file_get_args_t *args, hid_t dxpl_id, void **req)
{
    PyGILState_STATE gil;
    PyObject        *h = obj, *r = NULL;
    herr_t           ret = -1;

    (void)dxpl_id;
    (void)req;
    if (args->op_type == H5VL_FILE_GET_CONT_INFO) {
        H5VL_file_cont_info_t *info = args->args.get_cont_info.info;
        info->version               = H5VL_CONTAINER_INFO_VERSION;
        info->feature_flags         = 0;
        info->token_size            = H5O_MAX_TOKEN_SIZE;
        info->blob_id_size          = H5VL_MAX_BLOB_ID_SIZE;
        return 0;
    }
    if (pv_enter(&gil, __func__) < 0)
        return -1;
    switch (args->op_type) {
        case H5VL_FILE_GET_FAPL:
            if ((r = pv_call(PV_FN_file_get_fapl, __func__, 1, pv_ref(h))))
                ret = pv_as_hid(r, &args->args.get_fapl.fapl_id, __func__);
            break;
        case H5VL_FILE_GET_FCPL:
            if ((r = pv_call(PV_FN_file_get_fcpl, __func__, 1, pv_ref(h))))
                ret = pv_as_hid(r, &args->args.get_fcpl.fcpl_id, __func__);
            break;
        case H5VL_FILE_GET_FILENO:
            if ((r = pv_call(PV_FN_file_get_fileno, __func__, 1, pv_ref(h)))) {
                uint64_t v;
                if ((ret = pv_as_u64(r, &v, __func__)) == 0)
                    *args->args.get_fileno.fileno = (unsigned long)v;
            }
            break;
        case H5VL_FILE_GET_INTENT:
            if ((r = pv_call(PV_FN_file_get_intent, __func__, 1, pv_ref(h)))) {
                uint64_t v;
                if ((ret = pv_as_u64(r, &v, __func__)) == 0)
                    *args->args.get_intent.flags = (unsigned)v;
            }
            break;
        case H5VL_FILE_GET_NAME: {
            H5VL_file_get_name_args_t *a = &args->args.get_name;
            if ((r = pv_call(PV_FN_file_get_name, __func__, 1, pv_ref(h))))
                ret = pv_copy_name(r, a->buf, a->buf_size, a->file_name_len, __func__);
            break;
        }
        case H5VL_FILE_GET_OBJ_COUNT:
            ret = scan_objects(h, args->args.get_obj_count.types, 0, NULL, args->args.get_obj_count.count);
            break;
        case H5VL_FILE_GET_OBJ_IDS: {
            H5VL_file_get_obj_ids_args_t *a = &args->args.get_obj_ids;
            if (a->max_objs == 0) {
                *a->count = 0;
                ret       = 0;
            }
            else
                ret = scan_objects(h, a->types, a->max_objs, a->oid_list, a->count);
            break;
        }
        default:
            pv_push_error(__func__, "h5pyvol: unknown file get operation %d", (int)args->op_type);
    }
    Py_XDECREF(r);
    pv_leave(gil);
    return ret;
}

static herr_t pv_file_specific(void *obj, H5VL_file_specific_args_t *args, hid_t dxpl_id, void **req)
{
    PyGILState_STATE gil;
    PyObject        *r   = NULL;
    herr_t           ret = -1;

    (void)dxpl_id;
    (void)req;
    if (pv_enter(&gil, __func__) < 0)
        return -1;
    switch (args->op_type) {
        case H5VL_FILE_FLUSH:
            ret = pv_call_void(PV_FN_file_flush, __func__, 2, pv_ref(obj), pv_int(args->args.flush.scope));
            break;
        case H5VL_FILE_REOPEN:
            if ((r = pv_call(PV_FN_file_reopen, __func__, 1, pv_ref(obj)))) {
                *args->args.reopen.file = r; /* HDF5 now owns this reference */
                r                       = NULL;
                ret                     = 0;
            }
            break;
        case H5VL_FILE_IS_ACCESSIBLE: {
            hid_t fapl = args->args.is_accessible.fapl_id;
            if ((r = pv_call(PV_FN_file_is_accessible, __func__, 3, pv_spec_from_fapl(fapl),
                             pv_str(args->args.is_accessible.filename), pv_hid(fapl))))
                ret = pv_as_bool(r, args->args.is_accessible.accessible, __func__);
            break;
        }
        case H5VL_FILE_DELETE: {
            hid_t fapl = args->args.del.fapl_id;
            ret        = pv_call_void(PV_FN_file_delete, __func__, 3, pv_spec_from_fapl(fapl),
                                      pv_str(args->args.del.filename), pv_hid(fapl));
            break;
        }
        case H5VL_FILE_IS_EQUAL:
            if ((r = pv_call(PV_FN_file_is_equal, __func__, 2, pv_ref(obj), pv_ref(args->args.is_equal.obj2))))
                ret = pv_as_bool(r, args->args.is_equal.same_file, __func__);
            break;
        default:
            pv_push_error(__func__, "h5pyvol: unknown file operation %d", (int)args->op_type);
    }
    Py_XDECREF(r);
    pv_leave(gil);
    return ret;
}

static herr_t pv_file_optional(void *obj, H5VL_optional_args_t *args, hid_t dxpl_id, void **req)
{
    PyGILState_STATE gil;
    herr_t           ret;

    (void)dxpl_id;
    (void)req;
    if (pv_analysis_is_op(H5VL_SUBCLS_FILE, args->op_type))
        return pv_analysis_execute(obj, args, __func__);
    /* SWMR writing is a promise about consistency, which a connector can keep. */
    if (args->op_type != H5VL_NATIVE_FILE_START_SWMR_WRITE)
        return pv_unsupported(__func__, "file", args->op_type);
    if (pv_enter(&gil, __func__) < 0)
        return -1;
    ret = pv_call_void(PV_FN_file_start_swmr_write, __func__, 1, pv_ref(obj));
    pv_leave(gil);
    return ret;
}

static herr_t pv_file_close(void *obj, hid_t dxpl_id, void **req)
{
    (void)dxpl_id;
    (void)req;
    return pv_close(PV_FN_file_close, obj, __func__);
}

const H5VL_file_class_t pv_file_cls = {pv_file_create, pv_file_open,     pv_file_get,
                                       pv_file_specific, pv_file_optional, pv_file_close};
