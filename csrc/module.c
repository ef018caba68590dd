/*
 * module.c: h5pyvol._plugin, the functions the bridge needs from C.
 *
 * Buffers over HDF5's memory, dataspaces, datatypes and property lists made
 * or read in C (with no h5py object in between, on the bridge's hot paths),
 * ids for the bridge's handles; the module also carries the Handle and
 * FileBase types (handle.c, blob.c) and the data path's helpers (io.c).
 */
#include "pv.h"

#include <stdlib.h>
#include <string.h>

static PyObject *plugin_buffer(PyObject *self, PyObject *args)
{
    unsigned long long ptr;
    Py_ssize_t         size;
    int                writable;

    (void)self;
    if (!PyArg_ParseTuple(args, "Knp", &ptr, &size, &writable))
        return NULL;
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "negative buffer size");
        return NULL;
    }
    if (ptr == 0 && size > 0) {
        PyErr_SetString(PyExc_ValueError, "HDF5 passed a NULL buffer");
        return NULL;
    }
    return PyMemoryView_FromMemory((char *)(uintptr_t)ptr, size, writable ? PyBUF_WRITE : PyBUF_READ);
}

static PyObject *plugin_same_type(PyObject *self, PyObject *args)
{
    long long a, b;
    htri_t    eq;
    size_t    size;

    (void)self;
    if (!PyArg_ParseTuple(args, "LL", &a, &b))
        return NULL;
    eq   = H5Tequal((hid_t)a, (hid_t)b);
    size = H5Tget_size((hid_t)a);
    if (eq < 0 || size == 0) {
        PyErr_SetString(PyExc_TypeError, "not a valid HDF5 datatype");
        return NULL;
    }
    return Py_BuildValue("(Nn)", PyBool_FromLong(eq > 0), (Py_ssize_t)size);
}

static PyObject *plugin_copy_type(PyObject *self, PyObject *arg)
{
    hid_t copy;

    (void)self;
    if ((copy = H5Tcopy((hid_t)PyLong_AsLongLong(arg))) < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "not a valid HDF5 datatype");
        return NULL;
    }
    return PyLong_FromLongLong((long long)copy);
}

/* A new dataspace: None for null, () for scalar, else dims and max dims (-1: unlimited). */
static PyObject *plugin_make_space(PyObject *self, PyObject *args)
{
    PyObject  *shape, *maxshape;
    hsize_t    dims[H5S_MAX_RANK], maxdims[H5S_MAX_RANK];
    Py_ssize_t rank;
    hid_t      sid;

    (void)self;
    if (!PyArg_ParseTuple(args, "OO", &shape, &maxshape))
        return NULL;
    if (shape == Py_None)
        sid = H5Screate(H5S_NULL);
    else if (!PyTuple_Check(shape) || (rank = PyTuple_GET_SIZE(shape)) > H5S_MAX_RANK) {
        PyErr_SetString(PyExc_ValueError, "shape must be a tuple of at most 32 dimensions");
        return NULL;
    }
    else if (rank == 0)
        sid = H5Screate(H5S_SCALAR);
    else {
        for (Py_ssize_t i = 0; i < rank; i++) {
            dims[i] = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(shape, i));
            if (maxshape != Py_None) {
                PyObject *m = PyTuple_GetItem(maxshape, i);
                maxdims[i]  = (!m || m == Py_None) ? H5S_UNLIMITED : PyLong_AsUnsignedLongLong(m);
            }
        }
        if (PyErr_Occurred())
            return NULL;
        sid = H5Screate_simple((int)rank, dims, maxshape == Py_None ? NULL : maxdims);
    }
    if (sid < 0) {
        PyErr_SetString(PyExc_ValueError, "HDF5 could not create the dataspace");
        return NULL;
    }
    return PyLong_FromLongLong((long long)sid);
}

/* A new default property list of a class h5py has no constant for. */
static PyObject *plugin_new_plist(PyObject *self, PyObject *arg)
{
    const char *kind = PyUnicode_AsUTF8(arg);
    hid_t       cls, id;

    (void)self;
    if (!kind)
        return NULL;
    if (strcmp(kind, "attribute create") == 0)
        cls = H5P_ATTRIBUTE_CREATE;
    else if (strcmp(kind, "datatype create") == 0)
        cls = H5P_DATATYPE_CREATE;
    else {
        PyErr_Format(PyExc_ValueError, "no property list class %R", arg);
        return NULL;
    }
    if ((id = H5Pcreate(cls)) < 0) {
        PyErr_SetString(PyExc_RuntimeError, "HDF5 could not create the property list");
        return NULL;
    }
    return PyLong_FromLongLong((long long)id);
}

/* An HDF5 id for one of our handles, e.g. a committed datatype (HDF5 builds
 * the datatype from its binary form, asking the bridge). The id owns a reference. */
static PyObject *plugin_register(PyObject *self, PyObject *args)
{
    PyObject *handle;
    int       type;
    hid_t     id;

    (void)self;
    if (!PyArg_ParseTuple(args, "Oi", &handle, &type))
        return NULL;
    if ((id = pv_register(handle, (H5I_type_t)type)) < 0) {
        PyErr_SetString(PyExc_RuntimeError, "HDF5 could not register an id for the object");
        return NULL;
    }
    return PyLong_FromLongLong((long long)id);
}

/* Makes a datatype id the bridge keeps for itself the library's (ids.c). */
static PyObject *plugin_hide_id(PyObject *self, PyObject *arg)
{
    long long id;
    int       hidden;

    (void)self;
    if ((id = PyLong_AsLongLong(arg)) == -1 && PyErr_Occurred())
        return NULL;
    if ((hidden = pv_ids_hide((hid_t)id)) < 0) {
        PyErr_SetString(PyExc_RuntimeError, "HDF5 could not take over the id's reference");
        return NULL;
    }
    return PyBool_FromLong(hidden);
}


/* The id a Python int holds; -1 with an exception set if it holds none. */
static hid_t as_id(PyObject *arg)
{
    return (hid_t)PyLong_AsLongLong(arg);
}

/* (H5Tencode bytes, committed, shape or None, maxshape or None) of a new
 * array's datatype and dataspace: what its ArrayMeta holds. */
static PyObject *plugin_array_info(PyObject *self, PyObject *args)
{
    long long   type_id, space_id;
    size_t      size = 0;
    PyObject   *blob, *shape = NULL, *maxshape = NULL;
    hsize_t     dims[H5S_MAX_RANK], maxdims[H5S_MAX_RANK];
    int         rank, fixed = 1;
    htri_t      committed;

    (void)self;
    if (!PyArg_ParseTuple(args, "LL", &type_id, &space_id))
        return NULL;
    if (H5Tencode((hid_t)type_id, NULL, &size) < 0 || (committed = H5Tcommitted((hid_t)type_id)) < 0) {
        PyErr_SetString(PyExc_ValueError, "not a valid HDF5 datatype");
        return NULL;
    }
    if (!(blob = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size)))
        return NULL;
    if (H5Tencode((hid_t)type_id, PyBytes_AS_STRING(blob), &size) < 0) {
        Py_DECREF(blob);
        PyErr_SetString(PyExc_ValueError, "HDF5 could not encode the datatype");
        return NULL;
    }
    if (H5Sget_simple_extent_type((hid_t)space_id) == H5S_NULL)
        return Py_BuildValue("(NOOO)", blob, committed > 0 ? Py_True : Py_False, Py_None, Py_None);
    if ((rank = H5Sget_simple_extent_dims((hid_t)space_id, dims, maxdims)) < 0) {
        Py_DECREF(blob);
        PyErr_SetString(PyExc_ValueError, "not a valid HDF5 dataspace");
        return NULL;
    }
    shape = PyTuple_New(rank);
    for (int i = 0; shape && i < rank; i++) {
        PyTuple_SET_ITEM(shape, i, PyLong_FromUnsignedLongLong(dims[i]));
        fixed &= maxdims[i] == dims[i];
    }
    if (shape && !fixed && rank > 0) { /* None where unlimited */
        maxshape = PyTuple_New(rank);
        for (int i = 0; maxshape && i < rank; i++)
            PyTuple_SET_ITEM(maxshape, i, maxdims[i] == H5S_UNLIMITED ? Py_NewRef(Py_None)
                                                                      : PyLong_FromUnsignedLongLong(maxdims[i]));
    }
    if (!shape || (!fixed && rank > 0 && !maxshape)) {
        Py_DECREF(blob);
        Py_XDECREF(shape);
        return NULL;
    }
    return Py_BuildValue("(NONN)", blob, committed > 0 ? Py_True : Py_False, shape,
                         maxshape ? maxshape : Py_NewRef(Py_None));
}

/* H5Pencode of a property list. */
static PyObject *plugin_encode_plist(PyObject *self, PyObject *arg)
{
    hid_t     id   = as_id(arg);
    size_t    size = 0;
    PyObject *blob;

    (void)self;
    if (PyErr_Occurred())
        return NULL;
    if (H5Pencode2(id, NULL, &size, H5P_DEFAULT) < 0) {
        PyErr_Format(PyExc_ValueError, "HDF5 could not encode property list %lld", (long long)id);
        return NULL;
    }
    if (!(blob = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size)))
        return NULL;
    if (H5Pencode2(id, PyBytes_AS_STRING(blob), &size, H5P_DEFAULT) < 0) {
        Py_DECREF(blob);
        PyErr_Format(PyExc_ValueError, "HDF5 could not encode property list %lld", (long long)id);
        return NULL;
    }
    return blob;
}

/* (number of filters, whether the fill value is user-defined) of a dataset
 * creation property list: whether encode_dcpl must do more than encode. */
static PyObject *plugin_dcpl_facts(PyObject *self, PyObject *arg)
{
    hid_t            id = as_id(arg);
    int              nfilters;
    H5D_fill_value_t fill;

    (void)self;
    if (PyErr_Occurred())
        return NULL;
    if ((nfilters = H5Pget_nfilters(id)) < 0 || H5Pfill_value_defined(id, &fill) < 0) {
        PyErr_Format(PyExc_ValueError, "%lld is not a dataset creation property list", (long long)id);
        return NULL;
    }
    return Py_BuildValue("(iO)", nfilters, fill == H5D_FILL_VALUE_USER_DEFINED ? Py_True : Py_False);
}

/* Whether link creation properties ask for missing parent groups. */
static PyObject *plugin_intermediate_groups(PyObject *self, PyObject *arg)
{
    hid_t    id = as_id(arg);
    unsigned create;

    (void)self;
    if (PyErr_Occurred())
        return NULL;
    if (H5Pget_create_intermediate_group(id, &create) < 0) {
        PyErr_Format(PyExc_ValueError, "%lld is not a link creation property list", (long long)id);
        return NULL;
    }
    return PyBool_FromLong(create != 0);
}

/* In a C host the interpreter shuts down inside HDF5's exit handler
 * (H5_term_library, then this plugin's terminate). HDF5 registered that
 * handler at its first call, so it runs after the exit-time destructors of
 * every library loaded since, e.g. librados's, whose threads and state
 * the connector still needs then to close files and disconnect. */
static void close_hdf5(void)
{
    H5close(); /* files, then this plugin (and Python); HDF5's own handler then finds nothing to do */
}

static PyObject *plugin_close_hdf5_at_exit(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    if (!pv_owns_interpreter())
        Py_RETURN_FALSE; /* a Python program: its interpreter shuts down before exit() */
    if (atexit(close_hdf5) != 0) {
        PyErr_SetString(PyExc_RuntimeError, "atexit: no room for another exit handler");
        return NULL;
    }
    Py_RETURN_TRUE;
}

static PyMethodDef plugin_methods[] = {
    {"close_hdf5_at_exit", plugin_close_hdf5_at_exit, METH_NOARGS,
     "close_hdf5_at_exit() -> whether HDF5 (its files, this plugin, then the interpreter) is now closed by an "
     "exit handler that runs before the exit-time destructors of the libraries loaded so far (C programs only)"},
    {"array_info", plugin_array_info, METH_VARARGS,
     "array_info(type_id, space_id) -> (H5Tencode bytes, committed, shape or None for null, "
     "maxshape or None when fixed)"},
    {"encode_plist", plugin_encode_plist, METH_O, "encode_plist(plist_id) -> H5Pencode bytes"},
    {"dcpl_facts", plugin_dcpl_facts, METH_O,
     "dcpl_facts(dcpl_id) -> (number of filters, whether the fill value is user-defined)"},
    {"intermediate_groups", plugin_intermediate_groups, METH_O,
     "intermediate_groups(lcpl_id) -> whether missing parent groups are to be created"},
    {"hide_id", plugin_hide_id, METH_O,
     "hide_id(id) -> whether the application's reference became the library's "
     "(the id is then not counted by H5Fget_obj_count, and must never be closed)"},
    {"register", plugin_register, METH_VARARGS,
     "register(handle, H5I type) -> a new id for a bridge handle (the caller owns it)"},
    {"new_plist", plugin_new_plist, METH_O,
     "new_plist('attribute create' | 'datatype create') -> a new default property list id"},
    {"copy_type", plugin_copy_type, METH_O, "copy_type(type_id) -> a new datatype id (H5Tcopy)"},
    {"make_space", plugin_make_space, METH_VARARGS,
     "make_space(shape or None, maxshape or None) -> a new dataspace id"},
    {"io_stats", pv_py_io_stats, METH_NOARGS,
     "io_stats() -> (reads and writes served by the C fast path, by the bridge's general path)"},
    {"selection", pv_py_selection, METH_O,
     "selection(space_id) -> (shape, kind, count, regular) for all/none/regular hyperslabs; "
     "(space_id,) of a new offset-free copy, or None, for the rest"},
    {"same_type", plugin_same_type, METH_VARARGS,
     "same_type(mem_type_id, file_type_id) -> (equal, size of the memory type)"},
    {"ref_file_type", pv_py_ref_file_type, METH_VARARGS,
     "ref_file_type(file_handle, fapl_id) -> a new datatype id: H5T_STD_REF stored in that file (blob.c)"},
    {"buffer", plugin_buffer, METH_VARARGS,
     "buffer(address, nbytes, writable) -> memoryview over HDF5's buffer (valid only during the callback)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef plugin_module_def = {
    PyModuleDef_HEAD_INIT, "h5pyvol._plugin",
    "Functions the h5pyvol VOL plugin gives the bridge. Exists only inside the plugin.", -1,
    plugin_methods, NULL, NULL, NULL, NULL};


PyObject *pv_plugin_module_create(void)
{
    return PyModule_Create(&plugin_module_def);
}
