/* h5pyvol.storage._zones: a chunk's zone map (minimum and maximum) in one
 * pass, optionally fused with the copy a backend makes of the chunk anyway.
 *
 * A Python extension of the storage layer, not part of the VOL plugin: it
 * links Python only, never libhdf5. h5pyvol/storage/zones.py calls it for
 * native-order integer and float buffers whose last dimension is contiguous,
 * and uses numpy for everything else. numpy's min() and max() are two passes
 * over memory; here one pass computes both, with explicit vectors (32 bytes
 * where the CPU has AVX2, 16 bytes otherwise). NaNs are skipped: a comparison
 * with NaN is false, so it never replaces a bound. The GIL is released while
 * the loop runs, so upload workers zone chunks side by side.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <float.h>
#include <stdint.h>
#include <string.h>

/* One kernel per element type and vector width: running bounds `lo`, `hi`
 * take `n` elements of `src`; `dst`, if not NULL, receives a copy of them.
 * Four independent accumulators per bound keep the loop from waiting on one
 * chain of comparisons. VMIN(a, m) and VMAX(a, m) give the lanes of `a` that
 * improve on `m`, else `m`'s: a NaN in `a` never wins. */
#define ZONE_KERNEL(NAME, T, WIDTH, ATTR, VMIN, VMAX)                                                   \
    typedef T NAME##_vec __attribute__((vector_size(WIDTH)));                                           \
    ATTR static void NAME(const char *src, char *dst, Py_ssize_t n, T *lo, T *hi)                       \
    {                                                                                                   \
        enum { L = WIDTH / sizeof(T), U = 4 };                                                          \
        NAME##_vec vlo[U], vhi[U];                                                                      \
        for (int u = 0; u < U; u++)                                                                     \
            for (int k = 0; k < L; k++) {                                                               \
                vlo[u][k] = *lo;                                                                        \
                vhi[u][k] = *hi;                                                                        \
            }                                                                                           \
        Py_ssize_t i = 0;                                                                               \
        for (; i + U * L <= n; i += U * L) {                                                            \
            for (int u = 0; u < U; u++) {                                                               \
                NAME##_vec a;                                                                           \
                memcpy(&a, src + (i + u * L) * sizeof(T), WIDTH);                                       \
                if (dst)                                                                                \
                    memcpy(dst + (i + u * L) * sizeof(T), &a, WIDTH);                                   \
                vlo[u] = VMIN(a, vlo[u]);                                                               \
                vhi[u] = VMAX(a, vhi[u]);                                                               \
            }                                                                                           \
        }                                                                                               \
        T l = *lo, h = *hi;                                                                             \
        for (int u = 0; u < U; u++)                                                                     \
            for (int k = 0; k < L; k++) {                                                               \
                l = vlo[u][k] < l ? vlo[u][k] : l;                                                      \
                h = vhi[u][k] > h ? vhi[u][k] : h;                                                      \
            }                                                                                           \
        for (; i < n; i++) {                                                                            \
            T v;                                                                                        \
            memcpy(&v, src + i * sizeof(T), sizeof v);                                                  \
            if (dst)                                                                                    \
                memcpy(dst + i * sizeof(T), &v, sizeof v);                                              \
            l = v < l ? v : l;                                                                          \
            h = v > h ? v : h;                                                                          \
        }                                                                                               \
        *lo = l;                                                                                        \
        *hi = h;                                                                                        \
    }

/* The portable forms: compare, then select bitwise through an integer vector
 * of the same size (C has no vector ?:). */
#define BLEND(m, a, b) ((__typeof__(a))(((__typeof__(m))(a) & (m)) | ((__typeof__(m))(b) & ~(m))))
#define GMIN(a, m) BLEND((a) < (m), a, m)
#define GMAX(a, m) BLEND((a) > (m), a, m)

#if defined(__x86_64__) || defined(__i386__)
#define HAVE_WIDE 1
#define WIDE_ATTR __attribute__((target("avx2")))
/* x86's min/max instructions return their second operand when the first is
 * NaN: exactly GMIN/GMAX, in one instruction instead of two. */
#define PD_MIN(a, m) __builtin_ia32_minpd(a, m)
#define PD_MAX(a, m) __builtin_ia32_maxpd(a, m)
#define PS_MIN(a, m) __builtin_ia32_minps(a, m)
#define PS_MAX(a, m) __builtin_ia32_maxps(a, m)
#define PD_MIN256(a, m) __builtin_ia32_minpd256(a, m)
#define PD_MAX256(a, m) __builtin_ia32_maxpd256(a, m)
#define PS_MIN256(a, m) __builtin_ia32_minps256(a, m)
#define PS_MAX256(a, m) __builtin_ia32_maxps256(a, m)
#else
#define HAVE_WIDE 0
#define PD_MIN GMIN
#define PD_MAX GMAX
#define PS_MIN GMIN
#define PS_MAX GMAX
#endif

#if HAVE_WIDE
#define ZONE_TYPE(SUFFIX, T, MIN16, MAX16, MIN32, MAX32)                                                \
    ZONE_KERNEL(zone16_##SUFFIX, T, 16, , MIN16, MAX16)                                                 \
    ZONE_KERNEL(zone32_##SUFFIX, T, 32, WIDE_ATTR, MIN32, MAX32)
#else
#define ZONE_TYPE(SUFFIX, T, MIN16, MAX16, MIN32, MAX32) ZONE_KERNEL(zone16_##SUFFIX, T, 16, , MIN16, MAX16)
#endif

ZONE_TYPE(i8, int8_t, GMIN, GMAX, GMIN, GMAX)
ZONE_TYPE(u8, uint8_t, GMIN, GMAX, GMIN, GMAX)
ZONE_TYPE(i16, int16_t, GMIN, GMAX, GMIN, GMAX)
ZONE_TYPE(u16, uint16_t, GMIN, GMAX, GMIN, GMAX)
ZONE_TYPE(i32, int32_t, GMIN, GMAX, GMIN, GMAX)
ZONE_TYPE(u32, uint32_t, GMIN, GMAX, GMIN, GMAX)
ZONE_TYPE(i64, int64_t, GMIN, GMAX, GMIN, GMAX)
ZONE_TYPE(u64, uint64_t, GMIN, GMAX, GMIN, GMAX)
ZONE_TYPE(f32, float, PS_MIN, PS_MAX, PS_MIN256, PS_MAX256)
ZONE_TYPE(f64, double, PD_MIN, PD_MAX, PD_MIN256, PD_MAX256)

/* The element types handled here. */
typedef enum { K_I8, K_U8, K_I16, K_U16, K_I32, K_U32, K_I64, K_U64, K_F32, K_F64, K_NONE } kind_t;

/* Bounds of any kind, as the widest C types. */
typedef struct {
    int64_t i;
    uint64_t u;
    double f;
} bound_t;

static int wide_ok = 0; /* the CPU runs the AVX2 kernels */

/* Run the kernel of `kind` over one contiguous row of `n` elements. */
static void
zone_row(kind_t kind, const char *src, char *dst, Py_ssize_t n, bound_t *lo, bound_t *hi)
{
#define RUN(SUFFIX, T, FIELD)                                                                           \
    {                                                                                                   \
        T l = (T)lo->FIELD, h = (T)hi->FIELD;                                                           \
        if (HAVE_WIDE && wide_ok)                                                                       \
            WIDE_CALL(SUFFIX)(src, dst, n, &l, &h);                                                     \
        else                                                                                            \
            zone16_##SUFFIX(src, dst, n, &l, &h);                                                       \
        lo->FIELD = l;                                                                                  \
        hi->FIELD = h;                                                                                  \
        return;                                                                                         \
    }
#if HAVE_WIDE
#define WIDE_CALL(SUFFIX) zone32_##SUFFIX
#else
#define WIDE_CALL(SUFFIX) zone16_##SUFFIX
#endif
    switch (kind) {
        case K_I8: RUN(i8, int8_t, i)
        case K_U8: RUN(u8, uint8_t, u)
        case K_I16: RUN(i16, int16_t, i)
        case K_U16: RUN(u16, uint16_t, u)
        case K_I32: RUN(i32, int32_t, i)
        case K_U32: RUN(u32, uint32_t, u)
        case K_I64: RUN(i64, int64_t, i)
        case K_U64: RUN(u64, uint64_t, u)
        case K_F32: RUN(f32, float, f)
        case K_F64: RUN(f64, double, f)
        case K_NONE: return;
    }
#undef RUN
}

/* The kind of a buffer's format, or K_NONE (then numpy does the work). */
static kind_t
kind_of(const Py_buffer *view)
{
    const char *fmt = view->format ? view->format : "B";
    if (*fmt == '@' || *fmt == '=')
        fmt++;
#if PY_LITTLE_ENDIAN
    else if (*fmt == '<')
        fmt++;
#else
    else if (*fmt == '>' || *fmt == '!')
        fmt++;
#endif
    if (!fmt[0] || fmt[1])
        return K_NONE;
    int is_signed = strchr("bhilq", fmt[0]) != NULL, is_unsigned = strchr("BHILQ", fmt[0]) != NULL;
    switch (view->itemsize) {
        case 1: return is_signed ? K_I8 : is_unsigned ? K_U8 : K_NONE;
        case 2: return is_signed ? K_I16 : is_unsigned ? K_U16 : K_NONE;
        case 4: return is_signed ? K_I32 : is_unsigned ? K_U32 : fmt[0] == 'f' ? K_F32 : K_NONE;
        case 8: return is_signed ? K_I64 : is_unsigned ? K_U64 : fmt[0] == 'd' ? K_F64 : K_NONE;
        default: return K_NONE;
    }
}

static void
start_bounds(kind_t kind, bound_t *lo, bound_t *hi)
{
    static const int64_t imax[] = {INT8_MAX, 0, INT16_MAX, 0, INT32_MAX, 0, INT64_MAX};
    static const uint64_t umax[] = {0, UINT8_MAX, 0, UINT16_MAX, 0, UINT32_MAX, 0, UINT64_MAX};
    memset(lo, 0, sizeof *lo);
    memset(hi, 0, sizeof *hi);
    if (kind == K_F32 || kind == K_F64) {
        lo->f = (double)INFINITY; /* NaNs never replace these: all-NaN input keeps lo > hi */
        hi->f = -(double)INFINITY;
    }
    else if (kind == K_U8 || kind == K_U16 || kind == K_U32 || kind == K_U64)
        lo->u = umax[kind];
    else {
        lo->i = imax[kind];
        hi->i = -imax[kind] - 1;
    }
}

static PyObject *
bounds_tuple(kind_t kind, const bound_t *lo, const bound_t *hi)
{
    switch (kind) {
        case K_F32:
        case K_F64:
            if (lo->f > hi->f)
                Py_RETURN_NONE; /* no comparable value */
            return Py_BuildValue("(dd)", lo->f, hi->f);
        case K_U8: case K_U16: case K_U32: case K_U64:
            return Py_BuildValue("(KK)", (unsigned long long)lo->u, (unsigned long long)hi->u);
        default:
            return Py_BuildValue("(LL)", (long long)lo->i, (long long)hi->i);
    }
}

/* Zone `view` (any dimensions, last one contiguous), copying it in C order to
 * `dst` if not NULL. Returns the bounds tuple (or None), NULL with an
 * exception set for a buffer this module does not handle. */
static PyObject *
zone_view(const Py_buffer *view, char *dst)
{
    kind_t kind = kind_of(view);
    if (kind == K_NONE)
        return PyErr_Format(PyExc_TypeError, "no zone kernel for buffer format %s", view->format ? view->format : "B");
    int ndim = view->ndim;
    if (ndim > 0 && view->strides && view->strides[ndim - 1] != view->itemsize)
        return PyErr_Format(PyExc_ValueError, "the last dimension is not contiguous");
    if (ndim > 32)
        return PyErr_Format(PyExc_ValueError, "too many dimensions");
    bound_t lo, hi;
    start_bounds(kind, &lo, &hi);
    Py_ssize_t total = view->len / view->itemsize;
    if (total == 0)
        Py_RETURN_NONE;
    Py_ssize_t row = ndim ? view->shape[ndim - 1] : 1;
    Py_BEGIN_ALLOW_THREADS
    if (ndim <= 1 || !view->strides)
        zone_row(kind, (const char *)view->buf, dst, total, &lo, &hi);
    else {
        Py_ssize_t index[32] = {0};
        for (Py_ssize_t done = 0; done < total; done += row) {
            const char *p = (const char *)view->buf;
            for (int d = 0; d < ndim - 1; d++)
                p += index[d] * view->strides[d];
            zone_row(kind, p, dst ? dst + done * view->itemsize : NULL, row, &lo, &hi);
            for (int d = ndim - 2; d >= 0 && ++index[d] == view->shape[d]; d--)
                index[d] = 0; /* odometer over the outer dimensions */
        }
    }
    Py_END_ALLOW_THREADS
    return bounds_tuple(kind, &lo, &hi);
}

/* minmax() and copy_minmax() of any object with a buffer. */
static PyObject *
zone_object(PyObject *arg, int copying)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_STRIDES | PyBUF_FORMAT) < 0)
        return NULL;
    PyObject *out = NULL;
    if (!copying)
        out = zone_view(&view, NULL);
    else {
        PyObject *copy = PyBytes_FromStringAndSize(NULL, view.len); /* filled before anyone else sees it */
        PyObject *bounds = copy ? zone_view(&view, PyBytes_AS_STRING(copy)) : NULL;
        if (bounds)
            out = PyTuple_Pack(2, copy, bounds);
        Py_XDECREF(bounds);
        Py_XDECREF(copy);
    }
    PyBuffer_Release(&view);
    return out;
}

PyDoc_STRVAR(minmax_doc, "minmax(buffer) -> (min, max) | None\n\n"
                         "The smallest and largest element of a native-order integer or float buffer whose last\n"
                         "dimension is contiguous, ignoring NaNs; None when it has no comparable element.\n"
                         "TypeError or ValueError for any other buffer.");

static PyObject *
zones_minmax(PyObject *Py_UNUSED(module), PyObject *arg)
{
    return zone_object(arg, 0);
}

PyDoc_STRVAR(copy_minmax_doc, "copy_minmax(buffer) -> (bytes, (min, max) | None)\n\n"
                              "The buffer's elements as bytes in C order, and its bounds as minmax() gives them,\n"
                              "in one pass.");

static PyObject *
zones_copy_minmax(PyObject *Py_UNUSED(module), PyObject *arg)
{
    return zone_object(arg, 1);
}

static PyMethodDef zones_methods[] = {
    {"minmax", zones_minmax, METH_O, minmax_doc},
    {"copy_minmax", zones_copy_minmax, METH_O, copy_minmax_doc},
    {NULL, NULL, 0, NULL},
};

static int
zones_exec(PyObject *module)
{
#if HAVE_WIDE
    __builtin_cpu_init();
    wide_ok = __builtin_cpu_supports("avx2");
#endif
    return PyModule_AddIntConstant(module, "VECTOR_BYTES", HAVE_WIDE && wide_ok ? 32 : 16);
}

static PyModuleDef_Slot zones_slots[] = {
    {Py_mod_exec, zones_exec},
    {0, NULL},
};

static struct PyModuleDef zones_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "h5pyvol.storage._zones",
    .m_doc = "Zone maps (minimum and maximum) of chunk buffers in one pass; see h5pyvol.storage.zones.",
    .m_size = 0,
    .m_methods = zones_methods,
    .m_slots = zones_slots,
};

PyMODINIT_FUNC
PyInit__zones(void)
{
    return PyModuleDef_Init(&zones_module);
}
