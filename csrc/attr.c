/*
 * attr.c: the H5A callbacks.
 */
#include "pv.h"

#include <string.h>

static void *pv_attr_create(void *obj, const H5VL_loc_params_t *loc, const char *name, hid_t type_id,
                            hid_t space_id, hid_t acpl_id, hid_t aapl_id, hid_t dxpl_id, void **req)
{
    PyGILState_STATE gil;
    PyObject        *h;

    (void)dxpl_id;
    (void)req;
    if (pv_check_plist(acpl_id, H5P_ATTRIBUTE_CREATE, "attribute creation", __func__) < 0)
        return NULL;
    if (pv_check_plist(aapl_id, H5P_ATTRIBUTE_ACCESS, "attribute access", __func__) < 0)
        return NULL;
    if (pv_enter(&gil, __func__) < 0)
        return NULL;
    h = pv_call(PV_FN_attr_create, __func__, 7, pv_ref(obj), pv_loc(loc), pv_str(name), pv_hid(type_id),
                pv_hid(space_id), pv_plist(acpl_id), pv_plist(aapl_id));
    pv_leave(gil);
    return h;
}

static void *pv_attr_open(void *obj, const H5VL_loc_params_t *loc, const char *name, hid_t aapl_id,
                          hid_t dxpl_id, void **req)
{
    PyGILState_STATE gil;
    PyObject        *h;

    (void)dxpl_id;
    (void)req;
    if (pv_check_plist(aapl_id, H5P_ATTRIBUTE_ACCESS, "attribute access", __func__) < 0)
        return NULL;
    if (pv_enter(&gil, __func__) < 0)
        return NULL;
    h = pv_call(PV_FN_attr_open, __func__, 4, pv_ref(obj), pv_loc(loc), pv_str(name), pv_plist(aapl_id));
    pv_leave(gil);
    return h;
}

static herr_t pv_attr_read(void *attr, hid_t mem_type_id, void *buf, hid_t dxpl_id, void **req)
{
    PyGILState_STATE gil;
    herr_t           ret;

    (void)req;
    if (pv_enter(&gil, __func__) < 0)
        return -1;
    ret = pv_call_void(PV_FN_attr_read, __func__, 4, pv_ref(attr), pv_hid(mem_type_id), pv_ptr(buf),
                       pv_hid(dxpl_id));
    pv_leave(gil);
    return ret;
}

static herr_t pv_attr_write(void *attr, hid_t mem_type_id, const void *buf, hid_t dxpl_id, void **req)
{
    PyGILState_STATE gil;
    herr_t           ret;

    (void)req;
    if (pv_enter(&gil, __func__) < 0)
        return -1;
    ret = pv_call_void(PV_FN_attr_write, __func__, 4, pv_ref(attr), pv_hid(mem_type_id), pv_ptr(buf),
                       pv_hid(dxpl_id));
    pv_leave(gil);
    return ret;
}

static int parse_ainfo(PyObject *t, H5A_info_t *ainfo, const char *func)
{
    int                corder_valid, cset;
    long long          corder;
    unsigned long long size;

    if (!PyArg_ParseTuple(t, "pLiK;attribute info", &corder_valid, &corder, &cset, &size)) {
        pv_push_python_error(func);
        return -1;
    }
    ainfo->corder_valid = (hbool_t)corder_valid;
    ainfo->corder       = (H5O_msg_crt_idx_t)corder;
    ainfo->cset         = (H5T_cset_t)cset;
    ainfo->data_size    = (hsize_t)size;
    return 0;
}

static herr_t pv_attr_get(void *obj, H5VL_attr_get_args_t *args, hid_t dxpl_id, void **req)
{
    PyGILState_STATE gil;
    PyObject        *r   = NULL;
    herr_t           ret = -1;
    uint64_t         v;

    (void)dxpl_id;
    (void)req;
    /* h5py asks for an attribute's type and space at every open, read and
     * write: the handle answers in C. */
    if (args->op_type == H5VL_ATTR_GET_TYPE) {
        hid_t known = pv_handle_type_id(obj);
        if (known >= 0 && (args->args.get_type.type_id = H5Tcopy(known)) >= 0) {
            pv_trace_answered_in_c("attr_get_type", obj);
            return 0;
        }
    }
    if (args->op_type == H5VL_ATTR_GET_SPACE && (args->args.get_space.space_id = pv_handle_space(obj)) >= 0) {
        pv_trace_answered_in_c("attr_get_space", obj);
        return 0;
    }
    if (pv_enter(&gil, __func__) < 0)
        return -1;
    switch (args->op_type) {
        case H5VL_ATTR_GET_ACPL:
            if ((r = pv_call(PV_FN_attr_get_acpl, __func__, 1, pv_ref(obj))))
                ret = pv_as_hid(r, &args->args.get_acpl.acpl_id, __func__);
            break;
        case H5VL_ATTR_GET_INFO: {
            H5VL_attr_get_info_args_t *a = &args->args.get_info;
            if ((r = pv_call(PV_FN_attr_get_info, __func__, 3, pv_ref(obj), pv_loc(&a->loc_params),
                             pv_str(a->attr_name))))
                ret = parse_ainfo(r, a->ainfo, __func__);
            break;
        }
        case H5VL_ATTR_GET_NAME: {
            H5VL_attr_get_name_args_t *a = &args->args.get_name;
            if ((r = pv_call(PV_FN_attr_get_name, __func__, 2, pv_ref(obj), pv_loc(&a->loc_params))))
                ret = pv_copy_name(r, a->buf, a->buf_size, a->attr_name_len, __func__);
            break;
        }
        case H5VL_ATTR_GET_SPACE:
            if ((r = pv_call(PV_FN_attr_get_space, __func__, 1, pv_ref(obj))))
                ret = pv_as_hid(r, &args->args.get_space.space_id, __func__);
            break;
        case H5VL_ATTR_GET_TYPE:
            if ((r = pv_call(PV_FN_attr_get_type, __func__, 1, pv_ref(obj))))
                ret = pv_as_hid(r, &args->args.get_type.type_id, __func__);
            break;
        case H5VL_ATTR_GET_STORAGE_SIZE:
            if ((r = pv_call(PV_FN_attr_get_storage_size, __func__, 1, pv_ref(obj))) &&
                (ret = pv_as_u64(r, &v, __func__)) == 0)
                *args->args.get_storage_size.data_size = (hsize_t)v;
            break;
        default:
            pv_push_error(__func__, "h5pyvol: unknown attribute get operation %d", (int)args->op_type);
    }
    Py_XDECREF(r);
    pv_leave(gil);
    return ret;
}

/* H5Aiterate: the bridge returns a fresh handle on the object and a snapshot
 * of (name, info) pairs; the user's callback runs here, with an id of its own. */
static herr_t attr_iterate(void *obj, const H5VL_loc_params_t *loc, H5VL_attr_iterate_args_t *it,
                           const char *func)
{
    PyObject  *r, *owner, *items;
    int        owner_type;
    hid_t      owner_id;
    herr_t     ret = 0;
    Py_ssize_t n;

    r = pv_call(PV_FN_attr_iterate, func, 5, pv_ref(obj), pv_loc(loc), pv_int(it->idx_type), pv_int(it->order),
                pv_uint(it->idx ? *it->idx : 0));
    if (!r)
        return -1;
    if (!PyArg_ParseTuple(r, "OiO!;attribute iteration", &owner, &owner_type, &PyList_Type, &items)) {
        pv_push_python_error(func);
        Py_DECREF(r);
        return -1;
    }
    if ((owner_id = pv_register(owner, (H5I_type_t)owner_type)) < 0) {
        pv_push_error(func, "h5pyvol: cannot register an id for attribute iteration");
        Py_DECREF(r);
        return -1;
    }
    n = PyList_GET_SIZE(items);
    for (Py_ssize_t i = 0; i < n && ret == 0; i++) {
        PyObject  *item = PyList_GET_ITEM(items, i), *name, *info;
        H5A_info_t ainfo;
        if (!PyArg_ParseTuple(item, "UO;attribute iteration item", &name, &info) ||
            parse_ainfo(info, &ainfo, func) < 0) {
            if (PyErr_Occurred())
                pv_push_python_error(func);
            ret = -1;
            break;
        }
        ret = it->op(owner_id, PyUnicode_AsUTF8(name), &ainfo, it->op_data);
        if (it->idx)
            (*it->idx)++;
    }
    H5Idec_ref(owner_id);
    Py_DECREF(r);
    return ret;
}

static herr_t pv_attr_specific(void *obj, const H5VL_loc_params_t *loc, H5VL_attr_specific_args_t *args,
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
        case H5VL_ATTR_DELETE:
            ret = pv_call_void(PV_FN_attr_delete, __func__, 3, pv_ref(obj), pv_loc(loc),
                               pv_str(args->args.del.name));
            break;
        case H5VL_ATTR_DELETE_BY_IDX: {
            H5VL_attr_delete_by_idx_args_t *a = &args->args.delete_by_idx;
            ret = pv_call_void(PV_FN_attr_delete_by_idx, __func__, 5, pv_ref(obj), pv_loc(loc),
                               pv_int(a->idx_type), pv_int(a->order), pv_uint(a->n));
            break;
        }
        case H5VL_ATTR_EXISTS:
            if ((r = pv_call(PV_FN_attr_exists, __func__, 3, pv_ref(obj), pv_loc(loc),
                             pv_str(args->args.exists.name))))
                ret = pv_as_bool(r, args->args.exists.exists, __func__);
            break;
        case H5VL_ATTR_ITER:
            ret = attr_iterate(obj, loc, &args->args.iterate, __func__);
            break;
        case H5VL_ATTR_RENAME:
            ret = pv_call_void(PV_FN_attr_rename, __func__, 4, pv_ref(obj), pv_loc(loc),
                               pv_str(args->args.rename.old_name), pv_str(args->args.rename.new_name));
            break;
        default:
            pv_push_error(__func__, "h5pyvol: unknown attribute operation %d", (int)args->op_type);
    }
    Py_XDECREF(r);
    pv_leave(gil);
    return ret;
}

static herr_t pv_attr_optional(void *obj, H5VL_optional_args_t *args, hid_t dxpl_id, void **req)
{
    (void)obj;
    (void)dxpl_id;
    (void)req;
    return pv_unsupported(__func__, "attribute", args->op_type);
}

static herr_t pv_attr_close(void *attr, hid_t dxpl_id, void **req)
{
    (void)dxpl_id;
    (void)req;
    return pv_close(PV_FN_attr_close, attr, __func__);
}

const H5VL_attr_class_t pv_attr_cls = {pv_attr_create, pv_attr_open,     pv_attr_read,
                                       pv_attr_write,  pv_attr_get,      pv_attr_specific,
                                       pv_attr_optional, pv_attr_close};
