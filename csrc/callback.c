/*
 * callback.c: what every callback does on its way into Python and back.
 *
 * Owns: the GIL around each callback; the cyclic garbage collector, which is
 * off inside callbacks and run from here in C programs; Python exceptions
 * pending when a callback starts; exceptions that must outlive the callback
 * (KeyboardInterrupt, SystemExit: h5py raises them once HDF5 has unwound,
 * as it does for its own file-object driver); and, in C programs, SIGINT
 * while Python code runs.
 */
#include "pv.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>

/* In a C host, Python code (h5py's import, above all) may switch off HDF5's
 * automatic error printing; the host's setting is put back on every return. */
static H5E_auto2_t host_auto_func;
static void       *host_auto_data;

#define PV_MAX_DEPTH 64 /* nested callbacks (a callback's Python calling HDF5) */
static int           gc_was_enabled[PV_MAX_DEPTH];
static unsigned long pushed_before[PV_MAX_DEPTH];
static int           gc_deferred; /* collection is off until Python code runs again */
/* An exception pending when a callback starts (e.g. raised by an h5py
 * iteration callback, on its way back to h5py) is set aside and restored. */
static PyObject *pending[PV_MAX_DEPTH][3];
/* A KeyboardInterrupt, SystemExit or other exception that is no error,
 * raised by the connector: re-raised when the callback returns to Python. */
static PyObject *interrupt[3];

static volatile sig_atomic_t depth; /* callbacks running now (read by the SIGINT handler) */

/* ------------------------------------------------------------------ */
/* SIGINT in a C host                                                  */

/* The plugin starts the interpreter without Python's signal handlers (the
 * signals are the program's). While Python code runs for a callback, a
 * SIGINT becomes a KeyboardInterrupt there, so the connector stops and the
 * call fails with an error saying so; at any other time the program's own
 * disposition applies, as if the plugin were not there. */
static struct sigaction program_sigint; /* the program's, when the interpreter started */
static int              sigint_installed;
static volatile sig_atomic_t sigint_in_callback;

static void deliver_to_program(int sig, siginfo_t *info, void *context)
{
    if (program_sigint.sa_flags & SA_SIGINFO)
        program_sigint.sa_sigaction(sig, info, context);
    else if (program_sigint.sa_handler == SIG_DFL) {
        /* The default action (terminate), taken once this handler returns. */
        sigaction(SIGINT, &program_sigint, NULL);
        raise(SIGINT);
    }
    else if (program_sigint.sa_handler != SIG_IGN)
        program_sigint.sa_handler(sig);
}

static void on_sigint(int sig, siginfo_t *info, void *context)
{
    if (depth > 0) {
        sigint_in_callback = 1;
        PyErr_SetInterruptEx(SIGINT); /* async-signal-safe: raised at Python's next check */
        return;
    }
    deliver_to_program(sig, info, context);
}

void pv_signals_install(void)
{
    struct sigaction ours;
    PyObject        *mod, *r = NULL;

    if (sigaction(SIGINT, NULL, &program_sigint) != 0 ||
        (!(program_sigint.sa_flags & SA_SIGINFO) && program_sigint.sa_handler == SIG_IGN))
        return; /* a program that ignores Ctrl-C is not interrupted by it */
    /* Python raises KeyboardInterrupt for a SIGINT it is told of only when
     * its own handler for it is signal.default_int_handler; setting that
     * also installs Python's C-level handler, which ours then replaces. */
    mod = PyImport_ImportModule("signal");
    if (mod)
        r = PyObject_CallMethod(mod, "signal", "iO", SIGINT, PyObject_GetAttrString(mod, "default_int_handler"));
    Py_XDECREF(mod);
    if (!r) {
        PyErr_Clear(); /* e.g. not the main thread: SIGINT stays the program's */
        sigaction(SIGINT, &program_sigint, NULL);
        return;
    }
    Py_DECREF(r);
    memset(&ours, 0, sizeof ours);
    ours.sa_sigaction = on_sigint;
    ours.sa_flags     = SA_SIGINFO | SA_RESTART;
    sigemptyset(&ours.sa_mask);
    sigint_installed = sigaction(SIGINT, &ours, NULL) == 0;
}

void pv_signals_restore(void)
{
    struct sigaction now;

    if (!sigint_installed)
        return;
    sigint_installed = 0;
    /* Only if the program has not installed a handler of its own since. */
    if (sigaction(SIGINT, NULL, &now) == 0 && (now.sa_flags & SA_SIGINFO) && now.sa_sigaction == on_sigint)
        sigaction(SIGINT, &program_sigint, NULL);
}

/* After the outermost callback of a C host: a SIGINT that came while it
 * ran either ended it (the error says so) or came too late for Python to
 * notice; that one, and any for a program with a handler of its own, goes
 * to the program now. */
static void settle_sigint(int interrupted)
{
    sigset_t block, old;

    if (!sigint_in_callback)
        return;
    sigint_in_callback = 0;
    if (PyErr_CheckSignals() < 0) /* Python's flag: not to interrupt a later call */
        PyErr_Clear();
    if (interrupted && !(program_sigint.sa_flags & SA_SIGINFO) && program_sigint.sa_handler == SIG_DFL)
        return; /* the call failed with "interrupted": the program decides */
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    deliver_to_program(SIGINT, NULL, NULL); /* SIG_DFL: pending until unblocked, then terminates */
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* ------------------------------------------------------------------ */
/* Garbage collection in a C host                                      */

/* Python's collector starts when allocations outnumber deallocations by a
 * threshold, but only while it is enabled: in a C host all Python code runs
 * inside callbacks, where it is off, so cyclic garbage (a closed file's
 * objects refer to each other) would never be freed. After each outermost
 * callback that pushed no error (freeing an h5py object calls HDF5, which
 * would clear the error stack), the collection Python would have run is run
 * here: the oldest generation whose count passed its threshold. */
static void collect_if_due(void)
{
    static PyObject *get_count, *get_threshold, *collect;
    PyObject        *count = NULL, *threshold = NULL, *r;
    int              c[3], t[3];

    if (!get_count) {
        PyObject *gc = PyImport_ImportModule("gc");
        if (gc) {
            get_count     = PyObject_GetAttrString(gc, "get_count");
            get_threshold = PyObject_GetAttrString(gc, "get_threshold");
            collect       = PyObject_GetAttrString(gc, "collect");
            Py_DECREF(gc);
        }
        if (!get_count || !get_threshold || !collect) {
            PyErr_Clear();
            return;
        }
    }
    if ((count = PyObject_CallNoArgs(get_count)) && (threshold = PyObject_CallNoArgs(get_threshold)) &&
        PyArg_ParseTuple(count, "iii", &c[0], &c[1], &c[2]) &&
        PyArg_ParseTuple(threshold, "iii", &t[0], &t[1], &t[2]) && t[0] > 0 && c[0] > t[0]) {
        for (int g = 2; g >= 0; g--)
            if (c[g] > t[g] || g == 0) {
                r = PyObject_CallFunction(collect, "i", g);
                Py_XDECREF(r);
                break;
            }
    }
    Py_XDECREF(count);
    Py_XDECREF(threshold);
    PyErr_Clear();
}

/* A pending call: the interpreter runs it at the next Python bytecode, i.e.
 * after h5py has read an error's messages (set_exception is C code). */
static int enable_deferred_gc(void *unused)
{
    (void)unused;
    if (!gc_deferred)
        return 0;
    gc_deferred = 0;
    if (depth > 0)
        gc_was_enabled[0] = 1; /* inside a callback: its outermost return enables */
    else
        PyGC_Enable();
    return 0;
}

/* ------------------------------------------------------------------ */

void pv_keep_interrupt(PyObject *type, PyObject *value, PyObject *tb)
{
    PyObject *old[3] = {interrupt[0], interrupt[1], interrupt[2]};

    interrupt[0] = type;
    interrupt[1] = value;
    interrupt[2] = tb;
    for (int i = 0; i < 3; i++)
        Py_XDECREF(old[i]);
}

int pv_enter(PyGILState_STATE *gil, const char *func)
{
    int d;

    if (pv_owns_interpreter() || !pv_python_seen())
        H5Eget_auto2(H5E_DEFAULT, &host_auto_func, &host_auto_data);
    if (pv_python_start(func) < 0)
        return -1;
    *gil = PyGILState_Ensure();
    /* No cyclic garbage collection inside a callback: it frees h5py objects,
     * whose H5Idec_ref re-enters HDF5 and clears its error stack. */
    d                 = depth < PV_MAX_DEPTH ? depth : PV_MAX_DEPTH - 1;
    gc_was_enabled[d] = PyGC_Disable();
    pushed_before[d]  = pv_error_count();
    PyErr_Fetch(&pending[d][0], &pending[d][1], &pending[d][2]);
    depth++;
    if (pv_bridge_import(func) < 0) {
        pv_leave(*gil);
        return -1;
    }
    return 0;
}

void pv_leave(PyGILState_STATE gil)
{
    int d, failed, outermost_in_c;

    depth--;
    d              = depth < PV_MAX_DEPTH ? depth : PV_MAX_DEPTH - 1;
    failed         = pv_error_count() != pushed_before[d];
    outermost_in_c = d == 0 && pv_owns_interpreter();
    if (outermost_in_c) {
        int interrupted = interrupt[0] != NULL;
        /* No Python caller to raise anything in. */
        PyErr_Clear();
        pv_keep_interrupt(NULL, NULL, NULL);
        settle_sigint(interrupted);
        if (gc_was_enabled[d] && !failed) {
            PyGC_Enable();
            collect_if_due();
        }
    }
    /* An exception set now was raised by a callback of the program's that
     * ran inside this one (an h5py iteration callback): it stays, unless
     * one that is pending from before or an interrupt takes its place. Our
     * own errors are on HDF5's stack by now. */
    if (interrupt[0]) {
        /* Raised in the Python code that made this HDF5 call (h5py raises a
         * pending exception instead of HDF5's error), ahead of any other. */
        for (int i = 0; i < 3; i++)
            Py_CLEAR(pending[d][i]);
        PyErr_Clear();
        PyErr_Restore(interrupt[0], interrupt[1], interrupt[2]);
        interrupt[0] = interrupt[1] = interrupt[2] = NULL;
    }
    else if (pending[d][0]) {
        PyErr_Clear();
        PyErr_Restore(pending[d][0], pending[d][1], pending[d][2]);
        pending[d][0] = pending[d][1] = pending[d][2] = NULL;
    }
    /* Collection was put off during the callback, so one is usually due at
     * the next allocation. After a failure that would be inside h5py's
     * reading of the error: freeing an h5py object there calls HDF5, which
     * frees the messages h5py is reading. So after a failure collection
     * resumes only when Python code runs again. */
    if (gc_was_enabled[d]) {
        if (d == 0 && failed && Py_AddPendingCall(enable_deferred_gc, NULL) == 0)
            gc_deferred = 1;
        else
            PyGC_Enable();
    }
    PyGILState_Release(gil);
    if (pv_owns_interpreter())
        H5Eset_auto2(H5E_DEFAULT, host_auto_func, host_auto_data);
}
