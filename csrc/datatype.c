/*
 * datatype.c: the H5T callbacks for committed (named) datatypes.
 */
#include "pv.h"

#include <string.h>

static void *pv_datatype_commit(void *obj, const H5VL_loc_params_t *loc, const char *name, hid_t type_id,
                                hid_t lcpl_id, hid_t tcpl_id, hid_t tapl_id, hid_t dxpl_id, void **req)
{
    PyGILState_STATE gil;
    PyObject        *h;

    (void)dxpl_id;
    (void)req;
    if (pv_check_plist(lcpl_id, H5P_LINK_CREATE, "link creation", __func__) < 0)
        return NULL;
    if (pv_check_plist(tcpl_id, H5P_DATATYPE_CREATE, "datatype creation", __func__) < 0)
        return NULL;
    if (pv_check_plist(tapl_id, H5P_DATATYPE_ACCESS, "datatype access", __func__) < 0)
        return NULL;
    if (pv_enter(&gil, __func__) < 0)
        return NULL;
    h = pv_call(PV_FN_datatype_commit, __func__, 7, pv_ref(obj), pv_loc(loc), pv_str(name), pv_hid(type_id),
                pv_plist(lcpl_id), pv_plist(tcpl_id), pv_plist(tapl_id));
    pv_leave(gil);
    return h;
}

static void *pv_datatype_open(void *obj, const H5VL_loc_params_t *loc, const char *name, hid_t tapl_id,
                              hid_t dxpl_id, void **req)
{
    PyGILState_STATE gil;
    PyObject        *h;

    (void)dxpl_id;
    (void)req;
    if (pv_check_plist(tapl_id, H5P_DATATYPE_ACCESS, "datatype access", __func__) < 0)
        return NULL;
    if (pv_enter(&gil, __func__) < 0)
        return NULL;
    h = pv_call(PV_FN_datatype_open, __func__, 4, pv_ref(obj), pv_loc(loc), pv_str(name), pv_plist(tapl_id));
    pv_leave(gil);
    return h;
}

static herr_t pv_datatype_get(void *obj, H5VL_datatype_get_args_t *args, hid_t dxpl_id, void **req)
{
    PyGILState_STATE gil;
    PyObject        *r   = NULL;
    herr_t           ret = -1;

    (void)dxpl_id;
    (void)req;
    if (pv_enter(&gil, __func__) < 0)
        return -1;
    switch (args->op_type) {
        case H5VL_DATATYPE_GET_BINARY_SIZE:
        case H5VL_DATATYPE_GET_BINARY: {
            char      *data;
            Py_ssize_t n;
            if (!(r = pv_call(PV_FN_datatype_get_binary, __func__, 1, pv_ref(obj))))
                break;
            if (PyBytes_AsStringAndSize(r, &data, &n) < 0) {
                pv_push_python_error(__func__);
                break;
            }
            if (args->op_type == H5VL_DATATYPE_GET_BINARY_SIZE)
                *args->args.get_binary_size.size = (size_t)n;
            else if (args->args.get_binary.buf)
                memcpy(args->args.get_binary.buf, data,
                       (size_t)n < args->args.get_binary.buf_size ? (size_t)n : args->args.get_binary.buf_size);
            ret = 0;
            break;
        }
        case H5VL_DATATYPE_GET_TCPL:
            if ((r = pv_call(PV_FN_datatype_get_tcpl, __func__, 1, pv_ref(obj))))
                ret = pv_as_hid(r, &args->args.get_tcpl.tcpl_id, __func__);
            break;
        default:
            pv_push_error(__func__, "h5pyvol: unknown datatype get operation %d", (int)args->op_type);
    }
    Py_XDECREF(r);
    pv_leave(gil);
    return ret;
}

static herr_t pv_datatype_specific(void *obj, H5VL_datatype_specific_args_t *args, hid_t dxpl_id, void **req)
{
    PyGILState_STATE gil;
    herr_t           ret;

    (void)dxpl_id;
    (void)req;
    if (pv_enter(&gil, __func__) < 0)
        return -1;
    ret = pv_call_void(args->op_type == H5VL_DATATYPE_FLUSH ? PV_FN_object_flush : PV_FN_object_refresh,
                       __func__, 1, pv_ref(obj));
    pv_leave(gil);
    return ret;
}

static herr_t pv_datatype_optional(void *obj, H5VL_optional_args_t *args, hid_t dxpl_id, void **req)
{
    (void)obj;
    (void)dxpl_id;
    (void)req;
    return pv_unsupported(__func__, "datatype", args->op_type);
}

static herr_t pv_datatype_close(void *dt, hid_t dxpl_id, void **req)
{
    (void)dxpl_id;
    (void)req;
    return pv_close(PV_FN_datatype_close, dt, __func__);
}

const H5VL_datatype_class_t pv_datatype_cls = {pv_datatype_commit,   pv_datatype_open,
                                               pv_datatype_get,      pv_datatype_specific,
                                               pv_datatype_optional, pv_datatype_close};
