/*
 * link.c: the H5L callbacks.
 */
#include "pv.h"

#include <string.h>

static herr_t pv_link_create(H5VL_link_create_args_t *args, void *obj, const H5VL_loc_params_t *loc,
                             hid_t lcpl_id, hid_t lapl_id, hid_t dxpl_id, void **req)
{
    PyGILState_STATE gil;
    herr_t           ret = -1;

    (void)dxpl_id;
    (void)req;
    if (pv_check_plist(lcpl_id, H5P_LINK_CREATE, "link creation", __func__) < 0)
        return -1;
    if (pv_check_plist(lapl_id, H5P_LINK_ACCESS, "link access", __func__) < 0)
        return -1;
    if (pv_enter(&gil, __func__) < 0)
        return -1;
    switch (args->op_type) {
        case H5VL_LINK_CREATE_HARD:
            ret = pv_call_void(PV_FN_link_create_hard, __func__, 6, pv_ref(obj), pv_loc(loc),
                               pv_ref(args->args.hard.curr_obj), pv_loc(&args->args.hard.curr_loc_params),
                               pv_plist(lcpl_id), pv_plist(lapl_id));
            break;
        case H5VL_LINK_CREATE_SOFT:
            ret = pv_call_void(PV_FN_link_create_soft, __func__, 5, pv_ref(obj), pv_loc(loc),
                               pv_str(args->args.soft.target), pv_plist(lcpl_id), pv_plist(lapl_id));
            break;
        case H5VL_LINK_CREATE_UD:
            ret = pv_call_void(PV_FN_link_create_ud, __func__, 6, pv_ref(obj), pv_loc(loc),
                               pv_int(args->args.ud.type),
                               PyBytes_FromStringAndSize(args->args.ud.buf, (Py_ssize_t)args->args.ud.buf_size),
                               pv_plist(lcpl_id), pv_plist(lapl_id));
            break;
        default:
            pv_push_error(__func__, "h5pyvol: unknown link create operation %d", (int)args->op_type);
    }
    pv_leave(gil);
    return ret;
}

static herr_t copy_or_move(enum pv_fn fn, void *src, const H5VL_loc_params_t *loc1, void *dst,
                           const H5VL_loc_params_t *loc2, hid_t lcpl_id, hid_t lapl_id, const char *func)
{
    PyGILState_STATE gil;
    herr_t           ret;

    if (pv_check_plist(lcpl_id, H5P_LINK_CREATE, "link creation", __func__) < 0)
        return -1;
    if (pv_check_plist(lapl_id, H5P_LINK_ACCESS, "link access", __func__) < 0)
        return -1;
    if (pv_enter(&gil, func) < 0)
        return -1;
    ret = pv_call_void(fn, func, 6, pv_ref(src), pv_loc(loc1), pv_ref(dst), pv_loc(loc2), pv_plist(lcpl_id),
                       pv_plist(lapl_id));
    pv_leave(gil);
    return ret;
}

static herr_t pv_link_copy(void *src, const H5VL_loc_params_t *loc1, void *dst, const H5VL_loc_params_t *loc2,
                           hid_t lcpl_id, hid_t lapl_id, hid_t dxpl_id, void **req)
{
    (void)dxpl_id;
    (void)req;
    return copy_or_move(PV_FN_link_copy, src, loc1, dst, loc2, lcpl_id, lapl_id, __func__);
}

static herr_t pv_link_move(void *src, const H5VL_loc_params_t *loc1, void *dst, const H5VL_loc_params_t *loc2,
                           hid_t lcpl_id, hid_t lapl_id, hid_t dxpl_id, void **req)
{
    (void)dxpl_id;
    (void)req;
    return copy_or_move(PV_FN_link_move, src, loc1, dst, loc2, lcpl_id, lapl_id, __func__);
}

static herr_t pv_link_get(void *obj, const H5VL_loc_params_t *loc, H5VL_link_get_args_t *args, hid_t dxpl_id,
                          void **req)
{
    PyGILState_STATE gil;
    PyObject        *r   = NULL;
    herr_t           ret = -1;

    (void)dxpl_id;
    (void)req;
    if (pv_enter(&gil, __func__) < 0)
        return -1;
    switch (args->op_type) {
        case H5VL_LINK_GET_INFO:
            if ((r = pv_call(PV_FN_link_get_info, __func__, 2, pv_ref(obj), pv_loc(loc))))
                ret = pv_fill_linfo(r, args->args.get_info.linfo, __func__);
            break;
        case H5VL_LINK_GET_NAME:
            if ((r = pv_call(PV_FN_link_get_name, __func__, 2, pv_ref(obj), pv_loc(loc))))
                ret = pv_copy_name(r, args->args.get_name.name, args->args.get_name.name_size,
                                   args->args.get_name.name_len, __func__);
            break;
        case H5VL_LINK_GET_VAL: {
            char      *data;
            Py_ssize_t n;
            if (!(r = pv_call(PV_FN_link_get_val, __func__, 2, pv_ref(obj), pv_loc(loc))))
                break;
            if (PyBytes_AsStringAndSize(r, &data, &n) < 0) {
                pv_push_python_error(__func__);
                break;
            }
            if (args->args.get_val.buf && args->args.get_val.buf_size)
                memcpy(args->args.get_val.buf, data,
                       (size_t)n < args->args.get_val.buf_size ? (size_t)n : args->args.get_val.buf_size);
            ret = 0;
            break;
        }
        default:
            pv_push_error(__func__, "h5pyvol: unknown link get operation %d", (int)args->op_type);
    }
    Py_XDECREF(r);
    pv_leave(gil);
    return ret;
}

/* H5Literate / H5Lvisit: a snapshot of (name, info) from the bridge, and the
 * user's callback called here with an id for the group. */
static herr_t link_iterate(void *obj, const H5VL_loc_params_t *loc, H5VL_link_iterate_args_t *it,
                           const char *func)
{
    PyObject  *r, *group, *items;
    hid_t      gid;
    herr_t     ret = 0;
    Py_ssize_t n;

    r = pv_call(PV_FN_link_iterate, func, 6, pv_ref(obj), pv_loc(loc), PyBool_FromLong(it->recursive),
                pv_int(it->idx_type), pv_int(it->order), pv_uint(it->idx_p ? *it->idx_p : 0));
    if (!r)
        return -1;
    if (!PyArg_ParseTuple(r, "OO!;link iteration", &group, &PyList_Type, &items)) {
        pv_push_python_error(func);
        Py_DECREF(r);
        return -1;
    }
    if ((gid = pv_register(group, H5I_GROUP)) < 0) {
        pv_push_error(func, "h5pyvol: cannot register an id for link iteration");
        Py_DECREF(r);
        return -1;
    }
    n = PyList_GET_SIZE(items);
    for (Py_ssize_t i = 0; i < n && ret == 0; i++) {
        PyObject   *item = PyList_GET_ITEM(items, i), *name, *info;
        H5L_info2_t linfo;
        if (!PyArg_ParseTuple(item, "UO;link iteration item", &name, &info) ||
            pv_fill_linfo(info, &linfo, func) < 0) {
            if (PyErr_Occurred())
                pv_push_python_error(func);
            ret = -1;
            break;
        }
        ret = it->op(gid, PyUnicode_AsUTF8(name), &linfo, it->op_data);
        if (it->idx_p && !it->recursive)
            (*it->idx_p)++;
    }
    H5Idec_ref(gid);
    Py_DECREF(r);
    return ret;
}

static herr_t pv_link_specific(void *obj, const H5VL_loc_params_t *loc, H5VL_link_specific_args_t *args,
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
        case H5VL_LINK_DELETE:
            ret = pv_call_void(PV_FN_link_delete, __func__, 2, pv_ref(obj), pv_loc(loc));
            break;
        case H5VL_LINK_EXISTS:
            if ((r = pv_call(PV_FN_link_exists, __func__, 2, pv_ref(obj), pv_loc(loc))))
                ret = pv_as_bool(r, args->args.exists.exists, __func__);
            break;
        case H5VL_LINK_ITER:
            ret = link_iterate(obj, loc, &args->args.iterate, __func__);
            break;
        default:
            pv_push_error(__func__, "h5pyvol: unknown link operation %d", (int)args->op_type);
    }
    Py_XDECREF(r);
    pv_leave(gil);
    return ret;
}

static herr_t pv_link_optional(void *obj, const H5VL_loc_params_t *loc, H5VL_optional_args_t *args,
                               hid_t dxpl_id, void **req)
{
    (void)obj;
    (void)dxpl_id;
    (void)req;
    (void)loc;
    return pv_unsupported(__func__, "link", args->op_type);
}

const H5VL_link_class_t pv_link_cls = {pv_link_create, pv_link_copy,     pv_link_move,
                                       pv_link_get,    pv_link_specific, pv_link_optional};
