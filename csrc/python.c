/*
 * python.c: the embedded interpreter and every crossing into Python.
 *
 * Owns: starting CPython in a C host (or joining h5py's), the table of bridge
 * functions, argument/result conversion, and turning Python exceptions into
 * entries on HDF5's error stack (callback.c: what each callback does around
 * its call into Python).
 */
#define _GNU_SOURCE
#include "pv.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include <frameobject.h>

#define PV_MAX_ARGS 12

#define PV_NAME_ENTRY(name) #name,
static const char *const bridge_names[PV_FN_COUNT] = {PV_BRIDGE_FUNCTIONS(PV_NAME_ENTRY)};
#undef PV_NAME_ENTRY

static PyObject *bridge_fns[PV_FN_COUNT];
static PyObject *trace_in_c; /* bridge.trace_answered_in_c when tracing, else NULL */
static int bridge_ready;
static int seen_python;       /* the interpreter ran at some point */
static int owns_interpreter;  /* we started it (C host) */
static PyThreadState *saved_ts;


/* ------------------------------------------------------------------ */
/* HDF5 error stack                                                    */

static unsigned long errors_pushed; /* see pv_leave */

void pv_push_error(const char *func, const char *fmt, ...)
{
    char    msg[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    errors_pushed++;
    /* HDF5's own error class and codes, and not H5E_VOL: HDF5 1.14 can drop
     * the last reference to that message (see compat.c), after which any
     * stack naming it fails to print. The text says it comes from h5pyvol. */
    H5Epush2(H5E_DEFAULT, "h5pyvol", func, 0, H5E_ERR_CLS, H5E_PLUGIN, H5E_CANTOPERATE, "%s", msg);
}

int pv_check_plist(hid_t id, hid_t cls, const char *what, const char *func)
{
    htri_t ok = -1;

    if (id == H5P_DEFAULT)
        return 0;
    H5E_BEGIN_TRY
    {
        ok = H5Pisa_class(id, cls);
    }
    H5E_END_TRY
    if (ok > 0)
        return 0;
    pv_push_error(func, "h5pyvol: invalid %s property list (id %lld)", what, (long long)id);
    return -1;
}

herr_t pv_unsupported(const char *func, const char *kind, int op_type)
{
    pv_push_error(func, "h5pyvol: native-only %s operation %d is not supported", kind, op_type);
    return -1;
}

/* `o` as UTF-8 text that C can print: str() of it, with lone surrogates and
 * other unencodable characters escaped (\\udcff) and NUL shown as \\x00, so
 * that neither cuts nor hides the message. A new bytes object, or NULL. */
static PyObject *printable(PyObject *o)
{
    PyObject *text = PyUnicode_Check(o) ? Py_NewRef(o) : PyObject_Str(o);
    PyObject *enc, *out;

    if (!text)
        return NULL;
    enc = PyUnicode_AsEncodedString(text, "utf-8", "backslashreplace");
    Py_DECREF(text);
    if (!enc || !memchr(PyBytes_AS_STRING(enc), 0, (size_t)PyBytes_GET_SIZE(enc)))
        return enc;
    out = PyObject_CallMethod(enc, "replace", "y#y#", "\0", (Py_ssize_t)1, "\\x00", (Py_ssize_t)4);
    Py_DECREF(enc);
    return out;
}

/* "h5pyvol: TYPE: TEXT[, errno = N] [FILE:LINE in FUNCTION]" from the
 * exception, built without running Python code of ours. */
static void describe(PyObject *type, PyObject *value, PyObject *tb, char *out, size_t size)
{
    const char *tname = type ? ((PyTypeObject *)type)->tp_name : "Exception";
    const char *dot   = strrchr(tname, '.');
    PyObject   *args  = value ? ((PyBaseExceptionObject *)value)->args : NULL;
    PyObject   *text = NULL, *err = NULL, *file = NULL, *fn = NULL;
    const char *shown;
    char        where[512] = "", errno_part[64] = "";

    if (dot)
        tname = dot + 1;
    if (value && PyErr_GivenExceptionMatches(value, PyExc_KeyError) && args && PyTuple_Check(args) &&
        PyTuple_GET_SIZE(args) == 1)
        text = printable(PyTuple_GET_ITEM(args, 0)); /* no quotes */
    else if (value)
        text = printable(value);
    if (value && PyErr_GivenExceptionMatches(value, PyExc_OSError) &&
        (err = PyObject_GetAttrString(value, "errno")) && PyLong_Check(err))
        snprintf(errno_part, sizeof errno_part, ", errno = %ld", PyLong_AsLong(err));
    Py_XDECREF(err);
    if (tb && PyTraceBack_Check(tb)) {
        PyTracebackObject *last = (PyTracebackObject *)tb;
        while (last->tb_next)
            last = last->tb_next;
        PyCodeObject *code   = PyFrame_GetCode(last->tb_frame);
        PyObject     *lineno = PyObject_GetAttrString((PyObject *)last, "tb_lineno"); /* computed lazily */
        long          line   = lineno && PyLong_Check(lineno) ? PyLong_AsLong(lineno) : -1;
        Py_XDECREF(lineno);
        if (code) {
            const char *base;
            file = printable(code->co_filename);
            fn   = printable(code->co_name);
            base = file ? strrchr(PyBytes_AS_STRING(file), '/') : NULL;
            snprintf(where, sizeof where, " [%s:%ld in %s]", base ? base + 1 : (file ? PyBytes_AS_STRING(file) : "?"),
                     line, fn ? PyBytes_AS_STRING(fn) : "?");
            Py_DECREF(code);
        }
    }
    PyErr_Clear();
    shown = text ? PyBytes_AS_STRING(text) : "?";
    if (!*shown && value && PyErr_GivenExceptionMatches(value, PyExc_KeyboardInterrupt))
        shown = "interrupted (Ctrl-C, SIGINT)";
    snprintf(out, size, "h5pyvol: %s: %s%s%s", tname, shown, errno_part, where);
    PyErr_Clear();
    Py_XDECREF(text);
    Py_XDECREF(file);
    Py_XDECREF(fn);
}

/* Drop the local variables of the frames an exception (and those it chains
 * to) passed through. Frames and their exception form reference cycles that
 * only the cyclic collector frees, at some later allocation: if that frees an
 * h5py id, its H5Idec_ref clears HDF5's error stack, possibly while h5py is
 * still reading the messages (which then come out as garbage). */
static void clear_exception_frames(PyObject *value)
{
    static PyObject *clear_frames;

    if (!clear_frames) {
        PyObject *mod = PyImport_ImportModule("traceback");
        clear_frames  = mod ? PyObject_GetAttrString(mod, "clear_frames") : NULL;
        Py_XDECREF(mod);
    }
    for (int depth = 0; clear_frames && value && depth < 32; depth++) {
        PyObject *tb = PyException_GetTraceback(value), *next, *r;
        if (tb) {
            r = PyObject_CallOneArg(clear_frames, tb);
            Py_XDECREF(r);
            Py_DECREF(tb);
        }
        next = PyException_GetCause(value);
        if (!next)
            next = PyException_GetContext(value);
        if (next)
            Py_DECREF(next); /* still referenced by `value` */
        value = next;
    }
    PyErr_Clear();
}

void pv_push_python_error(const char *func)
{
    PyObject *type, *value, *tb;
    char      msg[2048];

    if (!PyErr_Occurred()) {
        pv_push_error(func, "h5pyvol: the connector failed without a Python exception");
        return;
    }
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    describe(type, value, tb, msg, sizeof msg);
    if (tb && value)
        PyException_SetTraceback(value, tb);
    clear_exception_frames(value);
    if (value && !PyErr_GivenExceptionMatches(value, PyExc_Exception)) {
        /* KeyboardInterrupt, SystemExit...: not an error of the call but a
         * request to stop, raised again in the Python code that made the
         * HDF5 call (callback.c) once HDF5 has unwound. */
        pv_keep_interrupt(type, value, tb);
        pv_push_error(func, "%s", msg);
        return;
    }
    /* Release the exception first: freeing its frames can free h5py objects,
     * whose H5Idec_ref would clear HDF5's error stack after our push. */
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    pv_push_error(func, "%s", msg);
}

/* ------------------------------------------------------------------ */
/* Starting and joining the interpreter                                */

/* The site-packages directory that holds this plugin
 * (<site>/h5pyvol/plugin/libh5pyvol.so), or "" if unknown. */
static void plugin_site_dir(char *out, size_t size)
{
    Dl_info info;
    char    path[4096];

    out[0] = '\0';
    if (!dladdr((void *)&plugin_site_dir, &info) || !info.dli_fname)
        return;
    snprintf(path, sizeof path, "%s", info.dli_fname);
    for (int up = 0; up < 3; up++) {
        char *slash = strrchr(path, '/');
        if (!slash)
            return;
        *slash = '\0';
    }
    snprintf(out, size, "%s", path);
}

/* The Python executable of the virtualenv that holds the plugin, so the
 * embedded interpreter sees the same packages as that venv's python. */
static int venv_python(const char *site, char *out, size_t size)
{
    char root[4200], cfg[4300];

    if (getenv("H5PYVOL_PYTHON") && *getenv("H5PYVOL_PYTHON")) {
        snprintf(out, size, "%s", getenv("H5PYVOL_PYTHON"));
        return 1;
    }
    if (!*site)
        return 0;
    snprintf(root, sizeof root, "%s/../../..", site); /* lib/pythonX.Y/site-packages */
    snprintf(cfg, sizeof cfg, "%s/pyvenv.cfg", root);
    if (access(cfg, R_OK) != 0)
        return 0;
    snprintf(out, size, "%s/bin/python3", root);
    return access(out, X_OK) == 0;
}

static int start_interpreter(const char *func)
{
    Dl_info  info;
    PyConfig config;
    PyStatus status;
    char     site[4096], program[4400];

    /* HDF5 dlopens plugins RTLD_LOCAL; extension modules need libpython's
     * symbols global or they fail with "undefined symbol: PyFloat_Type". */
    if (dladdr((void *)&Py_IsInitialized, &info) && info.dli_fname)
        dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);

    plugin_site_dir(site, sizeof site);
    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0; /* signals belong to the C program */
    config.parse_argv = 0;
    if (venv_python(site, program, sizeof program)) {
        status = PyConfig_SetBytesString(&config, &config.program_name, program);
        if (PyStatus_Exception(status))
            goto fail;
    }
    status = Py_InitializeFromConfig(&config);
    if (PyStatus_Exception(status))
        goto fail;
    PyConfig_Clear(&config);
    owns_interpreter = 1;
    pv_signals_install();

    if (*site) {
        /* Also covers plugins installed outside a venv. */
        PyObject *mod = PyImport_ImportModule("site");
        PyObject *r   = mod ? PyObject_CallMethod(mod, "addsitedir", "s", site) : NULL;
        if (!r)
            PyErr_Clear();
        Py_XDECREF(r);
        Py_XDECREF(mod);
    }
    saved_ts = PyEval_SaveThread();
    return 0;

fail:
    pv_push_error(func, "h5pyvol: cannot start the embedded Python interpreter: %s",
                  status.err_msg ? status.err_msg : "unknown error");
    PyConfig_Clear(&config);
    return -1;
}

/* Puts h5pyvol._plugin into sys.modules, once; with the GIL. The bridge
 * derives its handles from its types, so it must exist before the bridge
 * is imported, also by a program (bridge/plugin.py has HDF5 load the plugin). */
static int add_plugin_module(void)
{
    PyObject *plugin, *modules = PyImport_GetModuleDict();
    int       found           = PyDict_GetItemString(modules, "h5pyvol._plugin") != NULL;

    if (found)
        return 0;
    plugin = pv_plugin_module_create();
    if (!plugin || pv_add_handle_type(plugin) < 0 || pv_blob_module_init(plugin) < 0 ||
        PyDict_SetItemString(modules, "h5pyvol._plugin", plugin) < 0) {
        Py_XDECREF(plugin);
        return -1;
    }
    Py_DECREF(plugin);
    return 0;
}

void pv_python_plugin_loaded(void)
{
    PyGILState_STATE gil;

    /* Only where Python already runs (h5py); a C host starts it later. */
    if (!Py_IsInitialized() || owns_interpreter)
        return;
    gil = PyGILState_Ensure();
    if (add_plugin_module() < 0)
        PyErr_Clear(); /* import_bridge tries again and reports it */
    PyGILState_Release(gil);
}

static int import_bridge(const char *func)
{
    PyObject *mod;
    void     *before;
    int       ok = 1;

    if (add_plugin_module() < 0) {
        pv_push_python_error(func);
        return -1;
    }

    /* In a C host, the datatype ids h5py makes at import are not the
     * program's; in a Python host they are the process's, as natively. */
    before = owns_interpreter ? pv_ids_before_import() : NULL;
    mod    = PyImport_ImportModule("h5pyvol.bridge");
    pv_ids_after_import(before);
    if (!mod) {
        pv_push_python_error(func);
        pv_push_error(func, "h5pyvol: cannot import the Python package h5pyvol (sys.executable and "
                            "sys.path are those of the embedded interpreter; set H5PYVOL_PYTHON to the "
                            "python of the environment where h5pyvol is installed)");
        return -1;
    }
    for (int i = 0; i < PV_FN_COUNT; i++) {
        bridge_fns[i] = PyObject_GetAttrString(mod, bridge_names[i]);
        if (!bridge_fns[i]) {
            ok = 0;
            break;
        }
    }
    if (ok && (trace_in_c = PyObject_GetAttrString(mod, "trace_answered_in_c")) == Py_None)
        Py_CLEAR(trace_in_c);
    ok = ok && !PyErr_Occurred();
    Py_DECREF(mod);
    if (!ok) {
        pv_push_python_error(func);
        return -1;
    }
    bridge_ready = 1;
    /* h5py is fully imported now: point its calls to HDF5's 1.10-era functions here. */
    pv_compat_install();
    return 0;
}

void pv_trace_answered_in_c(const char *name, void *obj)
{
    PyGILState_STATE gil;
    PyObject        *r;

    if (!trace_in_c || pv_python_gone())
        return;
    gil = PyGILState_Ensure();
    r   = PyObject_CallFunction(trace_in_c, "sO", name, (PyObject *)obj);
    if (!r)
        PyErr_Clear();
    Py_XDECREF(r);
    PyGILState_Release(gil);
}

int pv_python_gone(void)
{
    return seen_python && !Py_IsInitialized();
}

/* Called by pv_enter (callback.c) with no GIL: 0 once the interpreter runs
 * (started here in a C host), -1 with an error pushed. */
int pv_python_start(const char *func)
{
    if (!Py_IsInitialized()) {
        if (seen_python) {
            pv_push_error(func, "h5pyvol: called after the Python interpreter shut down");
            return -1;
        }
        if (start_interpreter(func) < 0)
            return -1;
    }
    seen_python = 1;
    return 0;
}

/* With the GIL: 0 once the bridge is imported. */
int pv_bridge_import(const char *func)
{
    return bridge_ready ? 0 : import_bridge(func);
}

int pv_owns_interpreter(void)
{
    return owns_interpreter;
}

int pv_python_seen(void)
{
    return seen_python;
}

unsigned long pv_error_count(void)
{
    return errors_pushed;
}

void pv_python_terminate(void)
{
    if (Py_IsInitialized() && bridge_ready) {
        PyGILState_STATE gil = PyGILState_Ensure();
        for (int i = 0; i < PV_FN_COUNT; i++)
            Py_CLEAR(bridge_fns[i]);
        Py_CLEAR(trace_in_c);
        bridge_ready = 0;
        PyGILState_Release(gil);
    }
    if (owns_interpreter && Py_IsInitialized()) {
        pv_signals_restore();
        PyEval_RestoreThread(saved_ts);
        Py_FinalizeEx();
        owns_interpreter = 0;
    }
}

/* ------------------------------------------------------------------ */
/* Calls                                                               */

static PyObject *vcall(enum pv_fn fn, const char *func, Py_ssize_t nargs, va_list ap)
{
    PyObject *args[PV_MAX_ARGS] = {NULL};
    PyObject *result = NULL;
    int       missing = 0;

    for (Py_ssize_t i = 0; i < nargs; i++) {
        args[i] = va_arg(ap, PyObject *);
        if (!args[i])
            missing = 1;
    }
    if (!missing)
        result = PyObject_Vectorcall(bridge_fns[fn], args, (size_t)nargs, NULL);
    for (Py_ssize_t i = 0; i < nargs; i++)
        Py_XDECREF(args[i]);
    if (!result)
        pv_push_python_error(func);
    return result;
}

PyObject *pv_call(enum pv_fn fn, const char *func, Py_ssize_t nargs, ...)
{
    va_list   ap;
    PyObject *r;

    va_start(ap, nargs);
    r = vcall(fn, func, nargs, ap);
    va_end(ap);
    return r;
}

herr_t pv_call_void(enum pv_fn fn, const char *func, Py_ssize_t nargs, ...)
{
    va_list   ap;
    PyObject *r;

    va_start(ap, nargs);
    r = vcall(fn, func, nargs, ap);
    va_end(ap);
    if (!r)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Argument builders                                                   */

PyObject *pv_str(const char *s)
{
    if (!s)
        Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "surrogateescape");
}

PyObject *pv_int(long long v) { return PyLong_FromLongLong(v); }
PyObject *pv_uint(unsigned long long v) { return PyLong_FromUnsignedLongLong(v); }
PyObject *pv_hid(hid_t id) { return PyLong_FromLongLong((long long)id); }
PyObject *pv_plist(hid_t id)
{
    /* The library's variables, not the H5P_*_DEFAULT macros: each of those calls H5open. */
    const hid_t defaults[] = {H5P_LST_GROUP_CREATE_ID_g,     H5P_LST_GROUP_ACCESS_ID_g,
                              H5P_LST_DATASET_ACCESS_ID_g,   H5P_LST_ATTRIBUTE_CREATE_ID_g,
                              H5P_LST_ATTRIBUTE_ACCESS_ID_g, H5P_LST_DATATYPE_CREATE_ID_g,
                              H5P_LST_DATATYPE_ACCESS_ID_g,  H5P_LST_LINK_CREATE_ID_g,
                              H5P_LST_LINK_ACCESS_ID_g};

    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        if (id == defaults[i])
            return PyLong_FromLongLong(H5P_DEFAULT);
    return PyLong_FromLongLong((long long)id);
}

PyObject *pv_ptr(const void *p) { return PyLong_FromUnsignedLongLong((unsigned long long)(uintptr_t)p); }

PyObject *pv_ref(PyObject *o)
{
    if (!o)
        o = Py_None;
    Py_INCREF(o);
    return o;
}

static int valid_lapl(hid_t lapl)
{
    htri_t ok = -1;

    /* HDF5's API layer puts its default list in place of H5P_DEFAULT */
    if (lapl == H5P_DEFAULT || lapl == H5P_LST_LINK_ACCESS_ID_g)
        return 1;
    H5E_BEGIN_TRY
    {
        ok = H5Pisa_class(lapl, H5P_LINK_ACCESS);
    }
    H5E_END_TRY
    if (ok <= 0)
        PyErr_Format(PyExc_ValueError, "invalid link access property list (id %lld)", (long long)lapl);
    return ok > 0;
}

/* HDF5's default link access list as 0 (H5P_DEFAULT), which the bridge
 * reads as "defaults" without looking into a property list. */
static hid_t default_as_zero(hid_t lapl)
{
    return lapl == H5P_LST_LINK_ACCESS_ID_g ? H5P_DEFAULT : lapl;
}

PyObject *pv_loc(const H5VL_loc_params_t *loc)
{
    enum { NAME, IDX, TOKEN, NKIND };
    static const char *const text[NKIND] = {"name", "idx", "token"};
    static PyObject         *kind[NKIND];

    if ((loc->type == H5VL_OBJECT_BY_NAME && !valid_lapl(loc->loc_data.loc_by_name.lapl_id)) ||
        (loc->type == H5VL_OBJECT_BY_IDX && !valid_lapl(loc->loc_data.loc_by_idx.lapl_id)))
        return NULL;
    for (int i = 0; i < NKIND; i++)
        if (!kind[i] && !(kind[i] = PyUnicode_InternFromString(text[i])))
            return NULL;
    switch (loc->type) {
        case H5VL_OBJECT_BY_SELF:
            Py_RETURN_NONE;
        /* the link access properties come last: external links need them */
        case H5VL_OBJECT_BY_NAME: {
            const char *name = loc->loc_data.loc_by_name.name;
            PyObject   *str, *lapl, *t = NULL;
            if (name && name[0] == '.' && name[1] == '\0')
                Py_RETURN_NONE; /* "." is the object itself (H5Aexists_by_name and friends) */
            str  = pv_str(name);
            lapl = PyLong_FromLongLong((long long)default_as_zero(loc->loc_data.loc_by_name.lapl_id));
            if (str && lapl)
                t = PyTuple_Pack(3, kind[NAME], str, lapl);
            Py_XDECREF(str);
            Py_XDECREF(lapl);
            return t;
        }
        case H5VL_OBJECT_BY_IDX:
            return Py_BuildValue("(ONiiKL)", kind[IDX], pv_str(loc->loc_data.loc_by_idx.name),
                                 (int)loc->loc_data.loc_by_idx.idx_type, (int)loc->loc_data.loc_by_idx.order,
                                 (unsigned long long)loc->loc_data.loc_by_idx.n,
                                 (long long)default_as_zero(loc->loc_data.loc_by_idx.lapl_id));
        case H5VL_OBJECT_BY_TOKEN:
            return Py_BuildValue("(Oy#)", kind[TOKEN], (const char *)loc->loc_data.loc_by_token.token->__data,
                                 (Py_ssize_t)H5O_MAX_TOKEN_SIZE);
        default:
            PyErr_Format(PyExc_ValueError, "unknown HDF5 location type %d", (int)loc->type);
            return NULL;
    }
}

/* ------------------------------------------------------------------ */
/* Result readers                                                      */

int pv_as_hid(PyObject *o, hid_t *out, const char *func)
{
    long long v = PyLong_AsLongLong(o);
    if (v == -1 && PyErr_Occurred()) {
        pv_push_python_error(func);
        return -1;
    }
    *out = (hid_t)v;
    return 0;
}

int pv_as_u64(PyObject *o, uint64_t *out, const char *func)
{
    unsigned long long v = PyLong_AsUnsignedLongLong(o);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        pv_push_python_error(func);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

int pv_as_bool(PyObject *o, hbool_t *out, const char *func)
{
    int v = PyObject_IsTrue(o);
    if (v < 0) {
        pv_push_python_error(func);
        return -1;
    }
    *out = (hbool_t)v;
    return 0;
}

int pv_copy_name(PyObject *o, char *buf, size_t buf_size, size_t *len, const char *func)
{
    const char *s = "";
    Py_ssize_t  n = 0;
    PyObject   *enc = NULL;

    if (PyUnicode_Check(o)) {
        enc = PyUnicode_AsEncodedString(o, "utf-8", "surrogateescape");
        if (!enc) {
            pv_push_python_error(func);
            return -1;
        }
        s = PyBytes_AS_STRING(enc);
        n = PyBytes_GET_SIZE(enc);
    }
    else if (PyBytes_Check(o)) {
        s = PyBytes_AS_STRING(o);
        n = PyBytes_GET_SIZE(o);
    }
    else if (o != Py_None) {
        pv_push_error(func, "h5pyvol: the bridge returned a %s where a name was expected", Py_TYPE(o)->tp_name);
        return -1;
    }
    if (buf && buf_size > 0) {
        size_t k = (size_t)n < buf_size - 1 ? (size_t)n : buf_size - 1;
        memcpy(buf, s, k);
        buf[k] = '\0';
    }
    if (len)
        *len = (size_t)n;
    Py_XDECREF(enc);
    return 0;
}

int pv_as_token(PyObject *o, H5O_token_t *token, const char *func)
{
    char      *data;
    Py_ssize_t n;

    if (PyBytes_AsStringAndSize(o, &data, &n) < 0) {
        pv_push_python_error(func);
        return -1;
    }
    if (n > H5O_MAX_TOKEN_SIZE) {
        pv_push_error(func, "h5pyvol: object token of %zd bytes is longer than HDF5's %d", n,
                      H5O_MAX_TOKEN_SIZE);
        return -1;
    }
    memset(token, 0, sizeof *token);
    memcpy(token->__data, data, (size_t)n);
    return 0;
}

herr_t pv_close(enum pv_fn fn, void *obj, const char *func)
{
    PyGILState_STATE gil;
    herr_t           ret;

    if (pv_python_gone())
        return 0; /* atexit after Python finalized: nothing left to release */
    if (pv_enter(&gil, func) < 0)
        return -1;
    if (fn == PV_FN_file_close) {
        /* When a file's close fails, HDF5 keeps its id and this object, and
         * may close it again (h5py's next close, library shutdown): the
         * handle lives on until a close succeeds. */
        ret = pv_call_void(fn, func, 1, pv_ref(obj));
        if (ret >= 0)
            Py_DECREF((PyObject *)obj);
    }
    else {
        /* HDF5 frees other objects even when their close fails. The call
         * takes over HDF5's reference and drops it before a failure is
         * pushed: freeing the handle can free h5py objects, whose
         * H5Idec_ref would clear HDF5's error stack after the push. */
        ret = pv_call_void(fn, func, 1, (PyObject *)obj);
    }
    pv_leave(gil);
    return ret;
}
