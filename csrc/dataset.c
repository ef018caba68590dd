/*
 * dataset.c: the H5D callbacks. Buffers cross as addresses; the bridge wraps
 * them in memoryviews (h5pyvol._plugin.buffer), so no bytes are copied here.
 */
#include "pv.h"

static void *pv_dataset_create(void *obj, const H5VL_loc_params_t *loc, const char *name, hid_t lcpl_id,
                               hid_t type_id, hid_t space_id, hid_t dcpl_id, hid_t dapl_id, hid_t dxpl_id,
                               void **req)
{
    PyGILState_STATE gil;
    PyObject        *h;

    (void)dxpl_id;
    (void)req;
    if (pv_check_plist(lcpl_id, H5P_LINK_CREATE, "link creation", __func__) < 0)
        return NULL;
    if (pv_check_plist(dcpl_id, H5P_DATASET_CREATE, "dataset creation", __func__) < 0)
        return NULL;
    if (pv_check_plist(dapl_id, H5P_DATASET_ACCESS, "dataset access", __func__) < 0)
        return NULL;
    if (pv_enter(&gil, __func__) < 0)
        return NULL;
    h = pv_call(PV_FN_dataset_create, __func__, 8, pv_ref(obj), pv_loc(loc), pv_str(name), pv_plist(lcpl_id),
                pv_hid(type_id), pv_hid(space_id), pv_hid(dcpl_id), pv_plist(dapl_id));
    pv_leave(gil);
    return h;
}

static void *pv_dataset_open(void *obj, const H5VL_loc_params_t *loc, const char *name, hid_t dapl_id,
                             hid_t dxpl_id, void **req)
{
    PyGILState_STATE gil;
    PyObject        *h;

    (void)dxpl_id;
    (void)req;
    if (pv_check_plist(dapl_id, H5P_DATASET_ACCESS, "dataset access", __func__) < 0)
        return NULL;
    if (pv_enter(&gil, __func__) < 0)
        return NULL;
    h = pv_call(PV_FN_dataset_open, __func__, 4, pv_ref(obj), pv_loc(loc), pv_str(name), pv_plist(dapl_id));
    pv_leave(gil);
    return h;
}

static herr_t pv_dataset_read(size_t count, void *dset[], hid_t mem_type_id[], hid_t mem_space_id[],
                              hid_t file_space_id[], hid_t dxpl_id, void *buf[], void **req)
{
    PyGILState_STATE gil;
    herr_t           ret = 0;

    (void)req;
    if (pv_enter(&gil, __func__) < 0)
        return -1;
    for (size_t i = 0; i < count && ret == 0; i++)
        if (!pv_io_fast(dset[i], mem_type_id[i], mem_space_id[i], file_space_id[i], buf[i], 0, &ret, __func__))
            ret = pv_call_void(PV_FN_dataset_read, __func__, 6, pv_ref(dset[i]), pv_hid(mem_type_id[i]),
                               pv_hid(mem_space_id[i]), pv_hid(file_space_id[i]), pv_hid(dxpl_id), pv_ptr(buf[i]));
    pv_leave(gil);
    return ret;
}

static herr_t pv_dataset_write(size_t count, void *dset[], hid_t mem_type_id[], hid_t mem_space_id[],
                               hid_t file_space_id[], hid_t dxpl_id, const void *buf[], void **req)
{
    PyGILState_STATE gil;
    herr_t           ret = 0;

    (void)req;
    if (pv_enter(&gil, __func__) < 0)
        return -1;
    for (size_t i = 0; i < count && ret == 0; i++)
        if (!pv_io_fast(dset[i], mem_type_id[i], mem_space_id[i], file_space_id[i], (void *)buf[i], 1, &ret, __func__))
            ret = pv_call_void(PV_FN_dataset_write, __func__, 6, pv_ref(dset[i]), pv_hid(mem_type_id[i]),
                               pv_hid(mem_space_id[i]), pv_hid(file_space_id[i]), pv_hid(dxpl_id), pv_ptr(buf[i]));
    pv_leave(gil);
    return ret;
}

static herr_t pv_dataset_get(void *obj, H5VL_dataset_get_args_t *args, hid_t dxpl_id, void **req)
{
    PyGILState_STATE gil;
    PyObject        *r   = NULL;
    herr_t           ret = -1;
    uint64_t         v;

    (void)dxpl_id;
    (void)req;
    /* Every h5py read and write asks for the type and space: a dataset
     * handle answers the type of a transient type with no Python at all, and
     * the space of a dataset on the fast data path with one attribute look. */
    if (args->op_type == H5VL_DATASET_GET_TYPE) {
        hid_t known = pv_handle_type_id(obj);
        if (known >= 0 && (args->args.get_type.type_id = H5Tcopy(known)) >= 0) {
            pv_trace_answered_in_c("dataset_get_type", obj);
            return 0;
        }
    }
    if (args->op_type == H5VL_DATASET_GET_SPACE &&
        (args->args.get_space.space_id = pv_handle_dataset_space(obj)) >= 0) {
        pv_trace_answered_in_c("dataset_get_space", obj);
        return 0;
    }
    if (pv_enter(&gil, __func__) < 0)
        return -1;
    switch (args->op_type) {
        case H5VL_DATASET_GET_DAPL:
            if ((r = pv_call(PV_FN_dataset_get_dapl, __func__, 1, pv_ref(obj))))
                ret = pv_as_hid(r, &args->args.get_dapl.dapl_id, __func__);
            break;
        case H5VL_DATASET_GET_DCPL:
            if ((r = pv_call(PV_FN_dataset_get_dcpl, __func__, 1, pv_ref(obj))))
                ret = pv_as_hid(r, &args->args.get_dcpl.dcpl_id, __func__);
            break;
        case H5VL_DATASET_GET_SPACE:
            if ((r = pv_call(PV_FN_dataset_get_space, __func__, 1, pv_ref(obj))))
                ret = pv_as_hid(r, &args->args.get_space.space_id, __func__);
            break;
        case H5VL_DATASET_GET_TYPE:
            if ((r = pv_call(PV_FN_dataset_get_type, __func__, 1, pv_ref(obj))))
                ret = pv_as_hid(r, &args->args.get_type.type_id, __func__);
            break;
        case H5VL_DATASET_GET_SPACE_STATUS:
            if ((r = pv_call(PV_FN_dataset_get_space_status, __func__, 1, pv_ref(obj))) &&
                (ret = pv_as_u64(r, &v, __func__)) == 0)
                *args->args.get_space_status.status = (H5D_space_status_t)v;
            break;
        case H5VL_DATASET_GET_STORAGE_SIZE:
            if ((r = pv_call(PV_FN_dataset_get_storage_size, __func__, 1, pv_ref(obj))) &&
                (ret = pv_as_u64(r, &v, __func__)) == 0)
                *args->args.get_storage_size.storage_size = (hsize_t)v;
            break;
        default:
            pv_push_error(__func__, "h5pyvol: unknown dataset get operation %d", (int)args->op_type);
    }
    Py_XDECREF(r);
    pv_leave(gil);
    return ret;
}

static herr_t pv_dataset_specific(void *obj, H5VL_dataset_specific_args_t *args, hid_t dxpl_id, void **req)
{
    PyGILState_STATE gil;
    herr_t           ret = -1;

    (void)dxpl_id;
    (void)req;
    if (pv_enter(&gil, __func__) < 0)
        return -1;
    switch (args->op_type) {
        case H5VL_DATASET_SET_EXTENT:
            /* The bridge knows the rank, so it reads the dims from the address. */
            ret = pv_call_void(PV_FN_dataset_set_extent, __func__, 2, pv_ref(obj),
                               pv_ptr(args->args.set_extent.size));
            break;
        case H5VL_DATASET_FLUSH:
            ret = pv_call_void(PV_FN_object_flush, __func__, 1, pv_ref(obj));
            break;
        case H5VL_DATASET_REFRESH:
            ret = pv_call_void(PV_FN_object_refresh, __func__, 1, pv_ref(obj));
            break;
        default:
            pv_push_error(__func__, "h5pyvol: unknown dataset operation %d", (int)args->op_type);
    }
    pv_leave(gil);
    return ret;
}

static herr_t pv_dataset_optional(void *obj, H5VL_optional_args_t *args, hid_t dxpl_id, void **req)
{
    (void)obj;
    (void)dxpl_id;
    (void)req;
    return pv_unsupported(__func__, "dataset", args->op_type);
}

static herr_t pv_dataset_close(void *dset, hid_t dxpl_id, void **req)
{
    (void)dxpl_id;
    (void)req;
    return pv_close(PV_FN_dataset_close, dset, __func__);
}

const H5VL_dataset_class_t pv_dataset_cls = {pv_dataset_create, pv_dataset_open,     pv_dataset_read,
                                             pv_dataset_write,  pv_dataset_get,      pv_dataset_specific,
                                             pv_dataset_optional, pv_dataset_close};
