/*
 * handle.c: h5pyvol._plugin.Handle, the base of the bridge's dataset,
 * group, datatype and attribute handles.
 *
 * Owns the fields of a handle that the plugin reads in C, so that the
 * questions HDF5 asks again and again are answered with no Python:
 * - `get_type_id`: the datatype H5Dget_type and H5Aget_type copy;
 * - `space`: the dataspace H5Aget_space makes (an attribute's never changes),
 *   and H5Dget_space for a dataset on the fast data path, while its node's
 *   meta is the one the handle loaded (no resize since);
 * - `io`: the C fast data path's description of a dataset (io.c).
 * The bridge sets them (None: ask the bridge). The C-side readers need no
 * GIL: a handle is kept alive by HDF5's reference, and its fields change
 * only inside callbacks, which HDF5 serializes.
 */
#include "pv.h"

#include <stddef.h>
#include <stdlib.h>

/* HDF5 1.14 walks every open dataset and group id, of whatever connector,
 * when a native link is deleted or moved or a native file mounted
 * (H5G_name_replace, run by the passthru connector's native files too), and
 * reads each object as a native H5D_t or H5G_t. It skips one whose group
 * path has no full name: a NULL pointer where H5D_t and H5G_t keep it,
 * which `native_path` holds. */
#define PV_H5D_PATH_OFFSET (3 * sizeof(void *)) /* H5D_t: H5O_loc_t oloc (3 words), then H5G_name_t path */
#define PV_H5G_PATH_OFFSET (4 * sizeof(void *)) /* H5G_t: shared pointer, oloc, then path */

typedef struct {
    PyObject_HEAD
    hid_t       type_id;        /* what H5Dget_type/H5Aget_type copy; < 0: ask the bridge */
    const void *native_path[2]; /* always NULL: see above */
    PyObject   *io;             /* the fast data path's description, or NULL */
    PyObject *space;      /* what `space` was set to, or NULL */
    int       space_rank; /* -2: ask the bridge, -1: null dataspace, 0: scalar */
    hsize_t  *space_dims; /* rank extents, then rank maximum extents */
} pv_handle;

_Static_assert(offsetof(pv_handle, native_path) == PV_H5D_PATH_OFFSET &&
                   offsetof(pv_handle, native_path[1]) == PV_H5G_PATH_OFFSET,
               "a handle must hold NULL where HDF5 looks for a native dataset's and group's path");

static PyTypeObject handle_type;

static int handle_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(((pv_handle *)self)->io);
    Py_VISIT(((pv_handle *)self)->space);
    return 0;
}

static int handle_clear(PyObject *self)
{
    Py_CLEAR(((pv_handle *)self)->io);
    Py_CLEAR(((pv_handle *)self)->space);
    return 0;
}

static void handle_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    handle_clear(self);
    free(((pv_handle *)self)->space_dims);
    Py_TYPE(self)->tp_free(self);
}

static PyObject *handle_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *self = type->tp_alloc(type, 0);

    (void)args;
    (void)kwds;
    if (self) {
        ((pv_handle *)self)->type_id    = H5I_INVALID_HID;
        ((pv_handle *)self)->space_rank = -2;
    }
    return self;
}

static PyObject *handle_get_type_id(PyObject *self, void *closure)
{
    hid_t id = ((pv_handle *)self)->type_id;

    (void)closure;
    if (id < 0)
        Py_RETURN_NONE;
    return PyLong_FromLongLong((long long)id);
}

static int handle_set_type_id(PyObject *self, PyObject *value, void *closure)
{
    long long id = -1;

    (void)closure;
    if (value && value != Py_None && (id = PyLong_AsLongLong(value)) == -1 && PyErr_Occurred())
        return -1;
    ((pv_handle *)self)->type_id = (hid_t)id;
    return 0;
}

static PyObject *handle_get_io(PyObject *self, void *closure)
{
    PyObject *io = ((pv_handle *)self)->io;

    (void)closure;
    return Py_NewRef(io ? io : Py_None);
}

static int handle_set_io(PyObject *self, PyObject *value, void *closure)
{
    (void)closure;
    Py_XSETREF(((pv_handle *)self)->io, value && value != Py_None ? Py_NewRef(value) : NULL);
    return 0;
}

static PyObject *handle_get_space(PyObject *self, void *closure)
{
    PyObject *space = ((pv_handle *)self)->space;

    (void)closure;
    return Py_NewRef(space ? space : Py_None);
}

/* (shape, maxshape): shape None for a null dataspace, maxshape None when
 * fixed, else with None for unlimited dimensions; or None. */
static int handle_set_space(PyObject *self, PyObject *value, void *closure)
{
    pv_handle *h = (pv_handle *)self;
    PyObject  *shape, *maxshape;
    hsize_t   *dims = NULL;
    Py_ssize_t rank = -2;

    (void)closure;
    if (value && value != Py_None) {
        if (!PyArg_ParseTuple(value, "OO;space must be (shape or None, maxshape or None)", &shape, &maxshape))
            return -1;
        if (shape == Py_None)
            rank = -1;
        else if (!PyTuple_Check(shape) || (rank = PyTuple_GET_SIZE(shape)) > H5S_MAX_RANK ||
                 (maxshape != Py_None && (!PyTuple_Check(maxshape) || PyTuple_GET_SIZE(maxshape) != rank))) {
            PyErr_SetString(PyExc_ValueError, "space: shape and maxshape must be tuples of one rank (at most 32)");
            return -1;
        }
        if (rank > 0) {
            if (!(dims = malloc(2 * (size_t)rank * sizeof *dims))) {
                PyErr_NoMemory();
                return -1;
            }
            for (Py_ssize_t i = 0; i < rank; i++) {
                PyObject *m = maxshape == Py_None ? NULL : PyTuple_GET_ITEM(maxshape, i);
                dims[i]        = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(shape, i));
                dims[rank + i] = !m ? dims[i] : m == Py_None ? H5S_UNLIMITED : PyLong_AsUnsignedLongLong(m);
            }
            if (PyErr_Occurred()) {
                free(dims);
                return -1;
            }
        }
    }
    free(h->space_dims);
    h->space_dims = dims;
    h->space_rank = (int)rank;
    Py_XSETREF(h->space, rank == -2 ? NULL : Py_NewRef(value));
    return 0;
}

static PyGetSetDef handle_getset[] = {
    {"get_type_id", handle_get_type_id, handle_set_type_id,
     "datatype id H5Dget_type and H5Aget_type copy in C, or None to ask the bridge", NULL},
    {"space", handle_get_space, handle_set_space,
     "(shape or None for null, maxshape or None) of the dataspace H5Aget_space makes in C, or None", NULL},
    {"io", handle_get_io, handle_set_io,
     "(node, meta, file type id, dtype, shape, writable) for the C fast data path, or None", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject handle_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "h5pyvol._plugin.Handle",
    .tp_basicsize                          = sizeof(pv_handle),
    .tp_flags    = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc      = "Base of the bridge's handles: the fields the plugin's C paths read directly.",
    .tp_new      = handle_new,
    .tp_dealloc  = handle_dealloc,
    .tp_traverse = handle_traverse,
    .tp_clear    = handle_clear,
    .tp_getset   = handle_getset,
};

int pv_add_handle_type(PyObject *module)
{
    return PyModule_AddType(module, &handle_type); /* as "Handle", the last part of its tp_name */
}

static pv_handle *as_handle(void *obj)
{
    if (pv_python_gone() || !obj || !PyObject_TypeCheck((PyObject *)obj, &handle_type))
        return NULL;
    return obj;
}

hid_t pv_handle_type_id(void *obj)
{
    pv_handle *h = as_handle(obj);
    return h ? h->type_id : H5I_INVALID_HID;
}

hid_t pv_handle_space(void *obj)
{
    pv_handle *h = as_handle(obj);

    if (!h || h->space_rank == -2)
        return H5I_INVALID_HID;
    if (h->space_rank == -1)
        return H5Screate(H5S_NULL);
    if (h->space_rank == 0)
        return H5Screate(H5S_SCALAR);
    return H5Screate_simple(h->space_rank, h->space_dims, h->space_dims + h->space_rank);
}

PyObject *pv_handle_io(PyObject *obj)
{
    pv_handle *h = as_handle(obj);
    return h ? h->io : NULL;
}

hid_t pv_handle_dataset_space(void *obj)
{
    static PyObject *meta_str;
    pv_handle       *h = as_handle(obj);
    PyGILState_STATE gil;
    PyObject        *meta, *saved[3];
    int              fresh, gc;

    if (!h || !h->io || h->space_rank == -2)
        return H5I_INVALID_HID;
    gil = PyGILState_Ensure();
    /* As around a callback: no collection (it would call HDF5), and an
     * exception on its way back to h5py stays as it is. */
    gc = PyGC_Disable();
    PyErr_Fetch(&saved[0], &saved[1], &saved[2]);
    if (!meta_str)
        meta_str = PyUnicode_InternFromString("meta");
    meta  = meta_str ? PyObject_GetAttr(PyTuple_GET_ITEM(h->io, 0), meta_str) : NULL;
    fresh = meta && meta == PyTuple_GET_ITEM(h->io, 1);
    Py_XDECREF(meta);
    PyErr_Clear();
    PyErr_Restore(saved[0], saved[1], saved[2]);
    if (gc)
        PyGC_Enable();
    PyGILState_Release(gil);
    return fresh ? pv_handle_space(obj) : H5I_INVALID_HID;
}
