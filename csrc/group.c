/*
 * group.c: the H5G callbacks.
 */
#include "pv.h"

#include <H5VLnative.h>
#include <string.h>

static void *pv_group_create(void *obj, const H5VL_loc_params_t *loc, const char *name, hid_t lcpl_id,
                             hid_t gcpl_id, hid_t gapl_id, hid_t dxpl_id, void **req)
{
    PyGILState_STATE gil;
    PyObject        *h;

    (void)dxpl_id;
    (void)req;
    if (pv_check_plist(lcpl_id, H5P_LINK_CREATE, "link creation", __func__) < 0)
        return NULL;
    if (pv_check_plist(gcpl_id, H5P_GROUP_CREATE, "group creation", __func__) < 0)
        return NULL;
    if (pv_check_plist(gapl_id, H5P_GROUP_ACCESS, "group access", __func__) < 0)
        return NULL;
    if (pv_enter(&gil, __func__) < 0)
        return NULL;
    h = pv_call(PV_FN_group_create, __func__, 6, pv_ref(obj), pv_loc(loc), pv_str(name), pv_plist(lcpl_id),
                pv_plist(gcpl_id), pv_plist(gapl_id));
    pv_leave(gil);
    return h;
}

static void *pv_group_open(void *obj, const H5VL_loc_params_t *loc, const char *name, hid_t gapl_id,
                           hid_t dxpl_id, void **req)
{
    PyGILState_STATE gil;
    PyObject        *h;

    (void)dxpl_id;
    (void)req;
    if (pv_check_plist(gapl_id, H5P_GROUP_ACCESS, "group access", __func__) < 0)
        return NULL;
    if (pv_enter(&gil, __func__) < 0)
        return NULL;
    h = pv_call(PV_FN_group_open, __func__, 4, pv_ref(obj), pv_loc(loc), pv_str(name), pv_plist(gapl_id));
    pv_leave(gil);
    return h;
}

static herr_t pv_group_get(void *obj, H5VL_group_get_args_t *args, hid_t dxpl_id, void **req)
{
    PyGILState_STATE gil;
    PyObject        *r   = NULL;
    herr_t           ret = -1;

    (void)dxpl_id;
    (void)req;
    if (pv_enter(&gil, __func__) < 0)
        return -1;
    switch (args->op_type) {
        case H5VL_GROUP_GET_GCPL:
            if ((r = pv_call(PV_FN_group_get_gcpl, __func__, 1, pv_ref(obj))))
                ret = pv_as_hid(r, &args->args.get_gcpl.gcpl_id, __func__);
            break;
        case H5VL_GROUP_GET_INFO: {
            H5G_info_t *g = args->args.get_info.ginfo;
            int         storage, mounted;
            long long   max_corder;
            unsigned long long nlinks;
            r = pv_call(PV_FN_group_get_info, __func__, 2, pv_ref(obj), pv_loc(&args->args.get_info.loc_params));
            if (!r)
                break;
            if (!PyArg_ParseTuple(r, "iKLp;group info", &storage, &nlinks, &max_corder, &mounted)) {
                pv_push_python_error(__func__);
                break;
            }
            g->storage_type = (H5G_storage_type_t)storage;
            g->nlinks       = (hsize_t)nlinks;
            g->max_corder   = (int64_t)max_corder;
            g->mounted      = (hbool_t)mounted;
            ret             = 0;
            break;
        }
        default:
            pv_push_error(__func__, "h5pyvol: unknown group get operation %d", (int)args->op_type);
    }
    Py_XDECREF(r);
    pv_leave(gil);
    return ret;
}

static herr_t pv_group_specific(void *obj, H5VL_group_specific_args_t *args, hid_t dxpl_id, void **req)
{
    PyGILState_STATE gil;
    herr_t           ret = -1;

    (void)dxpl_id;
    (void)req;
    if (pv_enter(&gil, __func__) < 0)
        return -1;
    switch (args->op_type) {
        case H5VL_GROUP_FLUSH:
            ret = pv_call_void(PV_FN_object_flush, __func__, 1, pv_ref(obj));
            break;
        case H5VL_GROUP_REFRESH:
            ret = pv_call_void(PV_FN_object_refresh, __func__, 1, pv_ref(obj));
            break;
        case H5VL_GROUP_MOUNT: {
            /* HDF5 checked that the child is a file of this connector: our handle. */
            H5VL_group_spec_mount_args_t *a = &args->args.mount;
            ret = pv_call_void(PV_FN_group_mount, __func__, 4, pv_ref(obj), pv_str(a->name),
                               pv_ref((PyObject *)a->child_file), pv_hid(a->fmpl_id));
            break;
        }
        case H5VL_GROUP_UNMOUNT:
            ret = pv_call_void(PV_FN_group_unmount, __func__, 2, pv_ref(obj), pv_str(args->args.unmount.name));
            break;
        default:
            pv_push_error(__func__, "h5pyvol: unknown group operation %d", (int)args->op_type);
    }
    pv_leave(gil);
    return ret;
}

/* H5Gget_objinfo: deprecated and native-only in HDF5, but h5py hashes and
 * compares objects with it, so it is answered from the bridge. */
static herr_t get_objinfo(void *obj, H5VL_native_group_get_objinfo_t *a, const char *func)
{
    PyGILState_STATE   gil;
    PyObject          *r;
    unsigned long long fileno, nlink, linklen;
    long long          mtime;
    int                type;
    const char        *tok;
    Py_ssize_t         tok_len;
    herr_t             ret = -1;

    if (pv_enter(&gil, func) < 0)
        return -1;
    r = pv_call(PV_FN_group_get_objinfo, func, 3, pv_ref(obj), pv_loc(&a->loc_params),
                PyBool_FromLong(a->follow_link));
    if (r && PyArg_ParseTuple(r, "Ky#KiKL;object stat", &fileno, &tok, &tok_len, &nlink, &type, &linklen,
                              &mtime)) {
        H5G_stat_t *st = a->statbuf;
        if (st) {
            memset(st, 0, sizeof *st);
            st->fileno[0] = (unsigned long)fileno;
            memcpy(st->objno, tok, (size_t)tok_len < sizeof st->objno ? (size_t)tok_len : sizeof st->objno);
            st->nlink   = (unsigned)nlink;
            st->type    = (H5G_obj_t)type;
            st->linklen = (size_t)linklen;
            st->mtime   = (time_t)mtime;
        }
        ret = 0;
    }
    else if (r)
        pv_push_python_error(func);
    Py_XDECREF(r);
    pv_leave(gil);
    return ret;
}

static herr_t pv_group_optional(void *obj, H5VL_optional_args_t *args, hid_t dxpl_id, void **req)
{
    (void)dxpl_id;
    (void)req;
    if (args->op_type == H5VL_NATIVE_GROUP_GET_OBJINFO)
        return get_objinfo(obj, &((H5VL_native_group_optional_args_t *)args->args)->get_objinfo, __func__);
    return pv_unsupported(__func__, "group", args->op_type);
}

static herr_t pv_group_close(void *grp, hid_t dxpl_id, void **req)
{
    (void)dxpl_id;
    (void)req;
    return pv_close(PV_FN_group_close, grp, __func__);
}

const H5VL_group_class_t pv_group_cls = {pv_group_create,   pv_group_open,     pv_group_get,
                                         pv_group_specific, pv_group_optional, pv_group_close};
