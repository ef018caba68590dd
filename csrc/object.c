/*
 * object.c: the H5O callbacks.
 */
#include "pv.h"

static void *pv_object_open(void *obj, const H5VL_loc_params_t *loc, H5I_type_t *opened_type, hid_t dxpl_id,
                            void **req)
{
    PyGILState_STATE gil;
    PyObject        *r, *h = NULL;
    int              type;

    (void)dxpl_id;
    (void)req;
    if (pv_enter(&gil, __func__) < 0)
        return NULL;
    r = pv_call(PV_FN_object_open, __func__, 2, pv_ref(obj), pv_loc(loc));
    if (r) {
        if (PyArg_ParseTuple(r, "Oi;object open", &h, &type)) {
            Py_INCREF(h);
            *opened_type = (H5I_type_t)type;
        }
        else
            pv_push_python_error(__func__);
        Py_DECREF(r);
    }
    pv_leave(gil);
    return h;
}

static herr_t pv_object_copy(void *src, const H5VL_loc_params_t *loc1, const char *src_name, void *dst,
                             const H5VL_loc_params_t *loc2, const char *dst_name, hid_t ocpypl_id, hid_t lcpl_id,
                             hid_t dxpl_id, void **req)
{
    PyGILState_STATE gil;
    herr_t           ret;

    (void)dxpl_id;
    (void)req;
    if (pv_check_plist(ocpypl_id, H5P_OBJECT_COPY, "object copy", __func__) < 0)
        return -1;
    if (pv_check_plist(lcpl_id, H5P_LINK_CREATE, "link creation", __func__) < 0)
        return -1;
    if (pv_enter(&gil, __func__) < 0)
        return -1;
    ret = pv_call_void(PV_FN_object_copy, __func__, 8, pv_ref(src), pv_loc(loc1), pv_str(src_name), pv_ref(dst),
                       pv_loc(loc2), pv_str(dst_name), pv_hid(ocpypl_id), pv_hid(lcpl_id));
    pv_leave(gil);
    return ret;
}

static herr_t pv_object_get(void *obj, const H5VL_loc_params_t *loc, H5VL_object_get_args_t *args,
                            hid_t dxpl_id, void **req)
{
    PyGILState_STATE gil;
    PyObject        *r   = NULL;
    herr_t           ret = -1;

    (void)dxpl_id;
    (void)req;
    if (pv_enter(&gil, __func__) < 0)
        return -1;
    switch (args->op_type) {
        case H5VL_OBJECT_GET_FILE: {
            /* The bridge says whether the handle is new: HDF5 reuses the id
             * of a file object it already knows, and registers a new one. */
            PyObject *file;
            int       is_new;
            if (!(r = pv_call(PV_FN_object_get_file, __func__, 1, pv_ref(obj))))
                break;
            if (!PyArg_ParseTuple(r, "Op;object file", &file, &is_new)) {
                pv_push_python_error(__func__);
                break;
            }
            if (is_new)
                Py_INCREF(file);
            *args->args.get_file.file = file;
            ret                       = 0;
            break;
        }
        case H5VL_OBJECT_GET_NAME:
            if ((r = pv_call(PV_FN_object_get_name, __func__, 2, pv_ref(obj), pv_loc(loc))))
                ret = pv_copy_name(r, args->args.get_name.buf, args->args.get_name.buf_size,
                                   args->args.get_name.name_len, __func__);
            break;
        case H5VL_OBJECT_GET_TYPE:
            if ((r = pv_call(PV_FN_object_get_type, __func__, 2, pv_ref(obj), pv_loc(loc)))) {
                uint64_t v;
                if ((ret = pv_as_u64(r, &v, __func__)) == 0)
                    *args->args.get_type.obj_type = (H5O_type_t)v;
            }
            break;
        case H5VL_OBJECT_GET_INFO:
            if ((r = pv_call(PV_FN_object_get_info, __func__, 3, pv_ref(obj), pv_loc(loc),
                             pv_uint(args->args.get_info.fields))))
                ret = pv_fill_oinfo(r, args->args.get_info.oinfo, __func__);
            break;
        default:
            pv_push_error(__func__, "h5pyvol: unknown object get operation %d", (int)args->op_type);
    }
    Py_XDECREF(r);
    pv_leave(gil);
    return ret;
}

/* H5Ovisit: a snapshot of (name, info) from the bridge, and the user's
 * callback called here with an id for the starting object. */
static herr_t object_visit(void *obj, const H5VL_loc_params_t *loc, H5VL_object_visit_args_t *v,
                           const char *func)
{
    PyObject  *r, *start, *items;
    int        start_type;
    hid_t      sid;
    herr_t     ret = 0;
    Py_ssize_t n;

    r = pv_call(PV_FN_object_visit, func, 5, pv_ref(obj), pv_loc(loc), pv_int(v->idx_type), pv_int(v->order),
                pv_uint(v->fields));
    if (!r)
        return -1;
    if (!PyArg_ParseTuple(r, "OiO!;object visit", &start, &start_type, &PyList_Type, &items)) {
        pv_push_python_error(func);
        Py_DECREF(r);
        return -1;
    }
    if ((sid = pv_register(start, (H5I_type_t)start_type)) < 0) {
        pv_push_error(func, "h5pyvol: cannot register an id for object visiting");
        Py_DECREF(r);
        return -1;
    }
    n = PyList_GET_SIZE(items);
    for (Py_ssize_t i = 0; i < n && ret == 0; i++) {
        PyObject   *item = PyList_GET_ITEM(items, i), *name, *info;
        H5O_info2_t oinfo;
        if (!PyArg_ParseTuple(item, "UO;object visit item", &name, &info) ||
            pv_fill_oinfo(info, &oinfo, func) < 0) {
            if (PyErr_Occurred())
                pv_push_python_error(func);
            ret = -1;
            break;
        }
        ret = v->op(sid, PyUnicode_AsUTF8(name), &oinfo, v->op_data);
    }
    H5Idec_ref(sid);
    Py_DECREF(r);
    return ret;
}

static herr_t pv_object_specific(void *obj, const H5VL_loc_params_t *loc, H5VL_object_specific_args_t *args,
                                 hid_t dxpl_id, void **req)
{
    PyGILState_STATE gil;
    PyObject        *r   = NULL;
    herr_t           ret = -1;

    (void)dxpl_id;
    (void)req;
    if (pv_enter(&gil, __func__) < 0)
        return -1;
    switch (args->op_type) {
        case H5VL_OBJECT_CHANGE_REF_COUNT:
            ret = pv_call_void(PV_FN_object_change_rc, __func__, 3, pv_ref(obj), pv_loc(loc),
                               pv_int(args->args.change_rc.delta));
            break;
        case H5VL_OBJECT_EXISTS:
            if ((r = pv_call(PV_FN_object_exists, __func__, 2, pv_ref(obj), pv_loc(loc))))
                ret = pv_as_bool(r, args->args.exists.exists, __func__);
            break;
        case H5VL_OBJECT_LOOKUP:
            if ((r = pv_call(PV_FN_object_lookup, __func__, 2, pv_ref(obj), pv_loc(loc))))
                ret = pv_as_token(r, args->args.lookup.token_ptr, __func__);
            break;
        case H5VL_OBJECT_VISIT:
            ret = object_visit(obj, loc, &args->args.visit, __func__);
            break;
        case H5VL_OBJECT_FLUSH:
            ret = pv_call_void(PV_FN_object_flush, __func__, 1, pv_ref(obj));
            break;
        case H5VL_OBJECT_REFRESH:
            ret = pv_call_void(PV_FN_object_refresh, __func__, 1, pv_ref(obj));
            break;
        default:
            pv_push_error(__func__, "h5pyvol: unknown object operation %d", (int)args->op_type);
    }
    Py_XDECREF(r);
    pv_leave(gil);
    return ret;
}

static herr_t pv_object_optional(void *obj, const H5VL_loc_params_t *loc, H5VL_optional_args_t *args,
                                 hid_t dxpl_id, void **req)
{
    (void)obj;
    (void)dxpl_id;
    (void)req;
    (void)loc;
    return pv_unsupported(__func__, "object", args->op_type);
}

const H5VL_object_class_t pv_object_cls = {pv_object_open, pv_object_copy, pv_object_get, pv_object_specific,
                                           pv_object_optional};
