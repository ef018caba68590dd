/*
 * io.c: the data path's hot questions, answered in C without h5py wrapper
 * objects: what a dataspace selects (h5pyvol._plugin.selection), and the
 * fast path of H5Dread/H5Dwrite, which hands the connector its selection and
 * a numpy view of HDF5's buffer with no Python bridge code in between; and
 * h5pyvol._plugin.Handle, the base of the bridge's handles, whose C fields
 * those paths (and H5Dget_type) read without attribute lookups.
 */
#include "pv.h"

#include <stddef.h>
#include <string.h>

#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

/* The selection offset (H5Soffset_simple, used by h5py for broadcasting),
 * which HDF5 has no getter for: the bounds with it minus the bounds without.
 * Returns 1 if it is not zero. */
static int selection_offset(hid_t sid, int rank, hssize_t *offset)
{
    hsize_t  start[H5S_MAX_RANK], end[H5S_MAX_RANK], start0[H5S_MAX_RANK], end0[H5S_MAX_RANK];
    hssize_t zero[H5S_MAX_RANK] = {0};
    hid_t    copy;
    int      moved = 0;

    if (rank <= 0 || H5Sget_select_bounds(sid, start, end) < 0 || (copy = H5Scopy(sid)) < 0)
        return 0;
    if (H5Soffset_simple(copy, zero) >= 0 && H5Sget_select_bounds(copy, start0, end0) >= 0)
        for (int i = 0; i < rank; i++) {
            offset[i] = (hssize_t)start[i] - (hssize_t)start0[i];
            moved |= offset[i] != 0;
        }
    H5Sclose(copy);
    return moved;
}

/* A copy of the space with the offset moved into the selection itself. */
static hid_t fold_offset(hid_t sid, int rank, const hssize_t *offset)
{
    hssize_t zero[H5S_MAX_RANK] = {0}, shift[H5S_MAX_RANK];
    hid_t    copy = H5Scopy(sid);

    for (int i = 0; i < rank; i++)
        shift[i] = -offset[i]; /* H5Sselect_adjust subtracts */
    if (copy < 0 || H5Soffset_simple(copy, zero) < 0 || H5Sselect_adjust(copy, shift) < 0) {
        if (copy >= 0)
            H5Sclose(copy);
        return H5I_INVALID_HID;
    }
    return copy;
}

PyObject *pv_py_selection(PyObject *self, PyObject *arg)
{
    hid_t        sid = (hid_t)PyLong_AsLongLong(arg);
    hssize_t     offset[H5S_MAX_RANK] = {0};
    int          moved = 0;
    hsize_t      dims[H5S_MAX_RANK], start[H5S_MAX_RANK], stride[H5S_MAX_RANK], count[H5S_MAX_RANK],
                 block[H5S_MAX_RANK];
    int          rank;
    hssize_t     n;
    H5S_sel_type type;
    PyObject    *shape, *parts[4], *result;

    (void)self;
    if (PyErr_Occurred())
        return NULL;
    if (H5Sget_simple_extent_type(sid) == H5S_NULL)
        return Py_BuildValue("(()siO)", "none", 0, Py_None);
    rank = H5Sget_simple_extent_ndims(sid);
    n    = H5Sget_select_npoints(sid);
    type = H5Sget_select_type(sid);
    if (rank < 0 || n < 0 || type < 0 || H5Sget_simple_extent_dims(sid, dims, NULL) < 0) {
        PyErr_SetString(PyExc_ValueError, "not a valid HDF5 dataspace");
        return NULL;
    }
    if (type == H5S_SEL_POINTS || type == H5S_SEL_HYPERSLABS) {
        H5E_BEGIN_TRY
        {
            moved = selection_offset(sid, rank, offset);
        }
        H5E_END_TRY
    }
    if (!(shape = PyTuple_New(rank)))
        return NULL;
    for (int i = 0; i < rank; i++)
        PyTuple_SET_ITEM(shape, i, PyLong_FromUnsignedLongLong(dims[i]));
    if (type == H5S_SEL_ALL)
        result = Py_BuildValue("(NsLO)", shape, "all", (long long)n, Py_None);
    else if (type == H5S_SEL_NONE || n == 0)
        result = Py_BuildValue("(NsiO)", shape, "none", 0, Py_None);
    else if (type != H5S_SEL_HYPERSLABS || H5Sis_regular_hyperslab(sid) <= 0 || H5Sselect_valid(sid) <= 0 ||
             H5Sget_regular_hyperslab(sid, start, stride, count, block) < 0) {
        /* points, irregular or invalid: the Python path decides, on an
         * offset-free copy (which it then owns) when there is an offset */
        hid_t folded = H5I_INVALID_HID;
        Py_DECREF(shape);
        if (!moved)
            Py_RETURN_NONE;
        H5E_BEGIN_TRY
        {
            folded = fold_offset(sid, rank, offset);
        }
        H5E_END_TRY
        if (folded < 0) {
            PyErr_SetString(PyExc_ValueError, "cannot apply the selection offset");
            return NULL;
        }
        return Py_BuildValue("(L)", (long long)folded);
    }
    else {
        hsize_t *vals[4] = {start, stride, count, block};
        for (int i = 0; i < rank; i++) /* the regular-hyperslab start leaves the offset out */
            start[i] = (hsize_t)((hssize_t)start[i] + offset[i]);
        for (int p = 0; p < 4; p++) {
            parts[p] = PyTuple_New(rank);
            for (int i = 0; parts[p] && i < rank; i++)
                PyTuple_SET_ITEM(parts[p], i, PyLong_FromUnsignedLongLong(vals[p][i]));
        }
        result = Py_BuildValue("(NsL(NNNN))", shape, "hyperslab", (long long)n, parts[0], parts[1], parts[2],
                               parts[3]);
    }
    return result;
}


/* ------------------------------------------------------------------ */
/* The fast path of H5Dread/H5Dwrite                                  */

/* What one dataspace selects, when numpy can view it as basic slices. */
struct pv_view_sel {
    int      rank;
    int      all;
    hssize_t n;
    hsize_t  dims[H5S_MAX_RANK];
    hsize_t  start[H5S_MAX_RANK], stride[H5S_MAX_RANK], count[H5S_MAX_RANK], block[H5S_MAX_RANK];
    hsize_t  result[H5S_MAX_RANK]; /* shape of array[index] */
};

/* 1 if `sid` selects everything or a regular hyperslab that basic slicing
 * can view, inside the extent and with no selection offset; else 0. */
static int view_selection(hid_t sid, struct pv_view_sel *s)
{
    hsize_t      first[H5S_MAX_RANK], last[H5S_MAX_RANK];
    H5S_sel_type type;

    /* rank < 0 also covers a null dataspace */
    if ((s->rank = H5Sget_simple_extent_dims(sid, s->dims, NULL)) < 0 || (type = H5Sget_select_type(sid)) < 0)
        return 0;
    s->all = type == H5S_SEL_ALL;
    if (!s->all && (type != H5S_SEL_HYPERSLABS || H5Sis_regular_hyperslab(sid) <= 0 ||
                    H5Sget_regular_hyperslab(sid, s->start, s->stride, s->count, s->block) < 0))
        return 0;
    /* HDF5 applies no selection offset to "all" (H5S__all_bounds and its
     * iterator ignore it), so only hyperslabs need their bounds checked */
    if (!s->all && s->rank > 0 && H5Sget_select_bounds(sid, first, last) < 0)
        return 0;
    s->n = 1;
    for (int i = 0; i < s->rank; i++) {
        if (s->all)
            s->result[i] = s->dims[i];
        else {
            /* The bounds include the offset; the regular description does not. */
            if (first[i] != s->start[i] || last[i] >= s->dims[i])
                return 0;
            if (s->count[i] > 1 && s->block[i] > 1 && s->stride[i] != s->block[i])
                return 0; /* blocks with gaps: not a slice */
            s->result[i] = s->count[i] * s->block[i];
        }
        s->n *= (hssize_t)s->result[i];
    }
    return s->n > 0;
}

/* The numpy index of a viewable selection: a tuple of slices. */
static PyObject *slice_index(const struct pv_view_sel *s)
{
    PyObject *t;

    if (s->rank == 0)
        return PyTuple_Pack(1, Py_Ellipsis);
    if (!(t = PyTuple_New(s->rank)))
        return NULL;
    for (int i = 0; i < s->rank; i++) {
        PyObject *lo = NULL, *hi = NULL, *step = NULL, *sl;
        if (!s->all) {
            hsize_t end, by = 1;
            if (s->count[i] == 1)
                end = s->start[i] + s->block[i];
            else if (s->block[i] == 1) {
                end = s->start[i] + (s->count[i] - 1) * s->stride[i] + 1;
                by  = s->stride[i];
            }
            else /* stride == block: one run */
                end = s->start[i] + s->count[i] * s->block[i];
            lo   = PyLong_FromUnsignedLongLong(s->start[i]);
            hi   = PyLong_FromUnsignedLongLong(end);
            step = by == 1 ? NULL : PyLong_FromUnsignedLongLong(by);
        }
        sl = PySlice_New(lo, hi, step);
        Py_XDECREF(lo);
        Py_XDECREF(hi);
        Py_XDECREF(step);
        if (!sl) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, sl);
    }
    return t;
}

/* An h5pyvol.selection.SliceSelection for `s`, built without running a
 * constructor: only shape, kind, count and index are set (the class derives
 * the rest on demand). `shape` is the dataset's extent tuple, shared. */
static PyObject *make_selection(const struct pv_view_sel *s, PyObject *shape, PyObject *index)
{
    enum { SHAPE, KIND, COUNT, INDEX, NSET, ALL = NSET, HYPERSLAB, NSTR };
    static const char *const text[NSTR] = {"shape", "kind", "count", "index", "all", "hyperslab"};
    static PyObject         *cls, *str[NSTR];
    PyObject                *sel, *dict, *vals[NSET];
    int                      bad = 0;

    if (!cls) {
        PyObject *mod = PyImport_ImportModule("h5pyvol.selection");
        for (int i = 0; i < NSTR; i++)
            if (!str[i] && !(str[i] = PyUnicode_InternFromString(text[i])))
                return NULL;
        cls = mod ? PyObject_GetAttrString(mod, "SliceSelection") : NULL;
        Py_XDECREF(mod);
        if (!cls)
            return NULL;
    }
    if (!(sel = ((PyTypeObject *)cls)->tp_alloc((PyTypeObject *)cls, 0)))
        return NULL;
    vals[SHAPE] = Py_NewRef(shape);
    vals[KIND]  = Py_NewRef(str[s->all ? ALL : HYPERSLAB]);
    vals[COUNT] = PyLong_FromLongLong((long long)s->n);
    vals[INDEX] = Py_NewRef(index);
    dict        = PyObject_GenericGetDict(sel, NULL);
    for (int i = 0; i < NSET; i++) {
        bad |= !dict || !vals[i] || PyDict_SetItem(dict, str[i], vals[i]) < 0;
        Py_XDECREF(vals[i]);
    }
    Py_XDECREF(dict);
    if (bad)
        Py_CLEAR(sel);
    return sel;
}

/* A numpy array over `buf` (extent `m->dims`) viewing what `m` selects. */
static PyObject *buffer_view(PyArray_Descr *descr, const struct pv_view_sel *m, void *buf, int writable)
{
    npy_intp dims[H5S_MAX_RANK], strides[H5S_MAX_RANK], step = PyDataType_ELSIZE(descr);
    char    *data = buf;

    for (int i = m->rank - 1; i >= 0; i--) {
        dims[i]    = (npy_intp)m->result[i];
        strides[i] = step;
        if (!m->all) {
            data += (npy_intp)m->start[i] * step;
            if (m->count[i] > 1 && m->block[i] == 1)
                strides[i] = (npy_intp)m->stride[i] * step;
        }
        step *= (npy_intp)m->dims[i];
    }
    Py_INCREF(descr); /* stolen */
    return PyArray_NewFromDescr(&PyArray_Type, descr, m->rank, dims, strides, data,
                                writable ? NPY_ARRAY_WRITEABLE : 0, NULL);
}

static unsigned long long fast_calls, general_calls;
static int                numpy_ready; /* 0: not yet, 1: imported, -1: unavailable */

int pv_io_fast(PyObject *h, hid_t mem_type, hid_t mem_space, hid_t file_space, void *buf, int writing,
               herr_t *ret, const char *func)
{
    static PyObject   *meta_str, *read_str, *write_str;
    PyObject          *io, *meta = NULL, *fsel = NULL, *findex = NULL, *view = NULL, *r;
    PyObject          *node, *shape;
    struct pv_view_sel f, m;
    int                ok = 0;

    if (numpy_ready == 0) {
        numpy_ready = _import_array() < 0 ? -1 : 1;
        meta_str    = PyUnicode_InternFromString("meta");
        read_str    = PyUnicode_InternFromString("read");
        write_str   = PyUnicode_InternFromString("write");
        if (!meta_str || !read_str || !write_str)
            numpy_ready = -1;
        PyErr_Clear();
    }
    /* h.io: (node, meta, file type id, dtype, shape, writable), kept by the
     * bridge for datasets whose bytes copy as they are */
    if (numpy_ready < 0 || !buf || !(io = pv_handle_io(h)))
        goto general;
    Py_INCREF(io);
    if (!PyTuple_Check(io) || PyTuple_GET_SIZE(io) != 6 || !PyArray_DescrCheck(PyTuple_GET_ITEM(io, 3)) ||
        !PyTuple_Check(PyTuple_GET_ITEM(io, 4)) || (writing && !PyObject_IsTrue(PyTuple_GET_ITEM(io, 5))))
        goto done;
    node  = PyTuple_GET_ITEM(io, 0);
    shape = PyTuple_GET_ITEM(io, 4);
    /* another handle may have resized the dataset: the bridge reloads */
    if (!(meta = PyObject_GetAttr(node, meta_str)) || meta != PyTuple_GET_ITEM(io, 1))
        goto done;
    {
        hid_t ftype = (hid_t)PyLong_AsLongLong(PyTuple_GET_ITEM(io, 2));
        if (mem_type != ftype && H5Tequal(mem_type, ftype) <= 0)
            goto done;
    }
    if (file_space == H5S_ALL) {
        f.rank = (int)PyTuple_GET_SIZE(shape);
        f.all  = 1;
        f.n    = 1;
        if (f.rank > H5S_MAX_RANK)
            goto done;
        for (int i = 0; i < f.rank; i++) {
            f.dims[i] = f.result[i] = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(shape, i));
            f.n *= (hssize_t)f.dims[i];
        }
        if (PyErr_Occurred() || f.n <= 0)
            goto done;
    }
    else if (!view_selection(file_space, &f))
        goto done;
    if (mem_space == H5S_ALL)
        m = f;
    else if (!view_selection(mem_space, &m))
        goto done;
    if (f.rank != m.rank || f.rank != (int)PyTuple_GET_SIZE(shape))
        goto done;
    for (int i = 0; i < f.rank; i++)
        if (f.result[i] != m.result[i] || f.dims[i] != PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(shape, i)))
            goto done;
    if (PyErr_Occurred())
        goto done;

    /* From here on the call is ours: errors are the connector's to report. */
    ok = 1;
    fast_calls++;
    if ((findex = slice_index(&f)) && (fsel = make_selection(&f, shape, findex)) &&
        (view = buffer_view((PyArray_Descr *)PyTuple_GET_ITEM(io, 3), &m, buf, !writing))) {
        PyObject *args[3] = {node, fsel, view};
        r = PyObject_VectorcallMethod(writing ? write_str : read_str, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                      NULL);
        Py_XDECREF(r);
        *ret = r ? 0 : -1;
    }
    else
        *ret = -1;
    Py_XDECREF(findex);
    Py_XDECREF(fsel);
    Py_XDECREF(view);
    if (*ret < 0)
        pv_push_python_error(func);
done:
    Py_XDECREF(meta);
    Py_DECREF(io);
general:
    if (!ok) {
        PyErr_Clear();
        general_calls++;
    }
    return ok;
}

PyObject *pv_py_io_stats(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return Py_BuildValue("(KK)", fast_calls, general_calls);
}
