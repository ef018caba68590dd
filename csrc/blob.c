/*
 * blob.c: the H5VL blob callbacks, and what the bridge needs to convert
 * HDF5 1.12-style references (H5R_ref_t, type H5T_STD_REF).
 *
 * HDF5 converts an H5R_ref_t to its stored form with a copy of H5T_STD_REF
 * whose location is a file of this connector (H5VLget_file_type). A
 * same-file object reference is stored inline; attribute, region and
 * other-file references are encoded by HDF5 and kept as a *blob* through
 * these callbacks, the stored form holding the blob's id. The bridge
 * (blob_put, blob_get, blob_delete) hands blobs to the connector's file.
 *
 * A blob id is H5VL_MAX_BLOB_ID_SIZE bytes: the length of the connector's
 * key, then the key (at most 15 bytes). All zeros is the null id.
 *
 * Owns also h5pyvol._plugin.FileBase (the base class of the bridge's file
 * handles) and h5pyvol._plugin.ref_file_type.
 */
#include "pv.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static int blob_id_is_null(const void *blob_id)
{
    static const unsigned char zeros[H5VL_MAX_BLOB_ID_SIZE] = {0};
    return memcmp(blob_id, zeros, H5VL_MAX_BLOB_ID_SIZE) == 0;
}

static PyObject *blob_id_bytes(const void *blob_id)
{
    return PyBytes_FromStringAndSize(blob_id, H5VL_MAX_BLOB_ID_SIZE);
}

static herr_t pv_blob_put(void *obj, const void *buf, size_t size, void *blob_id, void *ctx)
{
    PyGILState_STATE gil;
    PyObject        *r;
    herr_t           ret = -1;

    (void)ctx;
    if (!blob_id || (size && !buf)) {
        pv_push_error(__func__, "h5pyvol: no buffer for a blob");
        return -1;
    }
    if (pv_enter(&gil, __func__) < 0)
        return -1;
    r = pv_call(PV_FN_blob_put, __func__, 2, pv_ref(obj), PyBytes_FromStringAndSize(buf, (Py_ssize_t)size));
    if (r) {
        if (!PyBytes_Check(r) || PyBytes_GET_SIZE(r) != H5VL_MAX_BLOB_ID_SIZE || blob_id_is_null(PyBytes_AS_STRING(r)))
            pv_push_error(__func__, "h5pyvol: the bridge returned no valid blob id");
        else {
            memcpy(blob_id, PyBytes_AS_STRING(r), H5VL_MAX_BLOB_ID_SIZE);
            ret = 0;
        }
        Py_DECREF(r);
    }
    pv_leave(gil);
    return ret;
}

/* A blob's bytes, whatever their size (HDF5's get callback is told the size
 * beforehand; 1.10-style region references, compat.c, are not): a malloc'd
 * copy in *buf, which the caller frees, and its size in *size. */
herr_t pv_blob_fetch(void *obj, const void *blob_id, void **buf, size_t *size)
{
    PyGILState_STATE gil;
    PyObject        *r;
    herr_t           ret = -1;

    *buf  = NULL;
    *size = 0;
    if (!blob_id || blob_id_is_null(blob_id)) {
        pv_push_error(__func__, "h5pyvol: a null blob id has no data (a null or corrupt reference)");
        return -1;
    }
    if (pv_enter(&gil, __func__) < 0)
        return -1;
    r = pv_call(PV_FN_blob_get, __func__, 2, pv_ref(obj), blob_id_bytes(blob_id));
    if (r) {
        if (!PyBytes_Check(r))
            pv_push_error(__func__, "h5pyvol: the connector's get_blob returned %s, not bytes",
                          Py_TYPE(r)->tp_name);
        else if (!(*buf = malloc((size_t)PyBytes_GET_SIZE(r) + 1)))
            pv_push_error(__func__, "h5pyvol: out of memory for a blob of %zd bytes", PyBytes_GET_SIZE(r));
        else {
            *size = (size_t)PyBytes_GET_SIZE(r);
            memcpy(*buf, PyBytes_AS_STRING(r), *size);
            ret = 0;
        }
        Py_DECREF(r);
    }
    pv_leave(gil);
    return ret;
}

static herr_t pv_blob_get(void *obj, const void *blob_id, void *buf, size_t size, void *ctx)
{
    void  *got;
    size_t got_size;

    (void)ctx;
    if (pv_blob_fetch(obj, blob_id, &got, &got_size) < 0)
        return -1;
    if (got_size != size) {
        pv_push_error(__func__, "h5pyvol: the blob holds %zu bytes, HDF5 expected %zu (a corrupt reference?)",
                      got_size, size);
        free(got);
        return -1;
    }
    memcpy(buf, got, size);
    free(got);
    return 0;
}

static herr_t pv_blob_specific(void *obj, void *blob_id, H5VL_blob_specific_args_t *args)
{
    PyGILState_STATE gil;
    herr_t           ret;

    switch (args->op_type) {
        case H5VL_BLOB_ISNULL:
            *args->args.is_null.isnull = blob_id_is_null(blob_id);
            return 0;
        case H5VL_BLOB_SETNULL:
            memset(blob_id, 0, H5VL_MAX_BLOB_ID_SIZE);
            return 0;
        case H5VL_BLOB_DELETE:
            if (blob_id_is_null(blob_id))
                return 0;
            if (pv_enter(&gil, __func__) < 0)
                return -1;
            ret = pv_call_void(PV_FN_blob_delete, __func__, 2, pv_ref(obj), blob_id_bytes(blob_id));
            pv_leave(gil);
            return ret;
        default:
            pv_push_error(__func__, "h5pyvol: unknown blob operation %d", (int)args->op_type);
            return -1;
    }
}

static herr_t pv_blob_optional(void *obj, void *blob_id, H5VL_optional_args_t *args)
{
    (void)obj;
    (void)blob_id;
    return pv_unsupported(__func__, "blob", args ? args->op_type : -1);
}

const H5VL_blob_class_t pv_blob_cls = {pv_blob_put, pv_blob_get, pv_blob_specific, pv_blob_optional};

/* ------------------------------------------------------------------ */
/* FileBase                                                            */

/* HDF5 1.14 turns a stored region reference back into an H5R_ref_t
 * (H5T__ref_mem_write in H5Tref.c) by reading the file's format bounds
 * through its VOL object as if that were a native H5F_t (whose third field
 * points to the shared file struct), whatever the connector. The bridge's
 * file handles derive from FileBase, so that field lies inside the object
 * and points to zeros: HDF5 then reads "earliest format" bounds, which the
 * region's decoding does not use, instead of wild memory. */
#define PV_SHARED_STANDIN_SIZE 65536 /* far more than HDF5's shared file struct */
static const unsigned char shared_standin[PV_SHARED_STANDIN_SIZE];

typedef struct {
    PyObject_HEAD
    const void *h5f_shared; /* where a native H5F_t keeps its shared struct */
} pv_file_base_t;

_Static_assert(offsetof(pv_file_base_t, h5f_shared) == 2 * sizeof(void *),
               "FileBase must keep the stand-in where HDF5's H5F_t keeps its shared struct");

static int file_base_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    (void)args;
    (void)kwds;
    ((pv_file_base_t *)self)->h5f_shared = shared_standin;
    return 0;
}

static PyObject *file_base_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *self = PyType_GenericNew(type, args, kwds);
    if (self)
        ((pv_file_base_t *)self)->h5f_shared = shared_standin;
    return self;
}

static PyTypeObject pv_file_base_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "h5pyvol._plugin.FileBase",
    .tp_basicsize                          = sizeof(pv_file_base_t),
    .tp_flags                              = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Base class of the bridge's file handles: the VOL object HDF5 holds for a file.",
    .tp_new  = file_base_new,
    .tp_init = file_base_init,
};

int pv_blob_module_init(PyObject *module)
{
    return PyModule_AddType(module, &pv_file_base_type); /* as "FileBase", the last part of its tp_name */
}

/* ref_file_type(file_handle, fapl_id) -> a new datatype id: H5T_STD_REF as
 * stored in that file (the caller closes it; it must not outlive the handle).
 * The file's access properties name the connector id (HDF5 finds the id of a
 * connector it loaded itself by no public name look-up). */
PyObject *pv_py_ref_file_type(PyObject *self, PyObject *args)
{
    PyObject *handle;
    long long fapl;
    hid_t     conn = H5I_INVALID_HID, tid;

    (void)self;
    if (!PyArg_ParseTuple(args, "OL", &handle, &fapl))
        return NULL;
    if (!PyObject_TypeCheck(handle, &pv_file_base_type)) {
        PyErr_Format(PyExc_TypeError, "ref_file_type needs a file handle of the bridge, not %s",
                     Py_TYPE(handle)->tp_name);
        return NULL;
    }
    if (H5Pget_vol_id((hid_t)fapl, &conn) < 0 || conn < 0) {
        PyErr_SetString(PyExc_RuntimeError, "the file's access properties name no VOL connector");
        return NULL;
    }
    tid = H5VLget_file_type(handle, conn, H5T_STD_REF);
    H5VLclose(conn);
    if (tid < 0) {
        PyErr_SetString(PyExc_RuntimeError, "HDF5 could not make the stored form of H5T_STD_REF");
        return NULL;
    }
    return PyLong_FromLongLong((long long)tid);
}
