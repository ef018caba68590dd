/*
 * analysis.c: H5ASexecute's plugin side (see h5as.h).
 *
 * Owns the file optional operation "h5pyvol.analysis.execute": registering
 * it with HDF5 when the plugin initializes, answering HDF5's query for it,
 * and serving it by calling h5pyvol.analysis.capi.execute_file with the C
 * program's file id and scripts; combine's value comes back as JSON in
 * memory the program frees with H5free_memory.
 */
#include "pv.h"

#include <string.h>

#include "h5as.h"

static int analysis_op = -1; /* the operation value HDF5 gave us, or -1 */

void pv_analysis_register(void)
{
    int    op    = -1;
    herr_t found = -1;

    /* Already registered (the plugin initialized before in this process). */
    H5E_BEGIN_TRY
    {
        found = H5VLfind_opt_operation(H5VL_SUBCLS_FILE, H5AS_EXECUTE_OP_NAME, &op);
    }
    H5E_END_TRY
    if (found < 0 && H5VLregister_opt_operation(H5VL_SUBCLS_FILE, H5AS_EXECUTE_OP_NAME, &op) < 0)
        op = -1; /* H5ASexecute then reports that the operation is missing */
    analysis_op = op;
}

void pv_analysis_unregister(void)
{
    if (analysis_op >= 0) {
        H5E_BEGIN_TRY
        {
            H5VLunregister_opt_operation(H5VL_SUBCLS_FILE, H5AS_EXECUTE_OP_NAME);
        }
        H5E_END_TRY
        analysis_op = -1;
    }
}

int pv_analysis_is_op(H5VL_subclass_t cls, int op_type)
{
    return cls == H5VL_SUBCLS_FILE && analysis_op >= 0 && op_type == analysis_op;
}

herr_t pv_analysis_execute(void *obj, H5VL_optional_args_t *args, const char *func)
{
    H5AS_execute_args_t *as = args->args;
    PyGILState_STATE     gil;
    PyObject            *mod, *r = NULL;
    herr_t               ret = -1;

    (void)obj; /* the file id names the same file; h5py needs the id */
    if (!as || !as->map_script) {
        pv_push_error(func, "h5pyvol: H5ASexecute needs a map script");
        return -1;
    }
    if (pv_enter(&gil, func) < 0)
        return -1;
    mod = PyImport_ImportModule("h5pyvol.analysis.capi");
    if (mod) {
        r = PyObject_CallMethod(mod, "execute_file", "Lss", (long long)as->file_id, as->map_script,
                                as->combine_script);
        Py_DECREF(mod);
    }
    if (!r)
        pv_push_python_error(func);
    else if (!PyUnicode_Check(r))
        pv_push_error(func, "h5pyvol: the analysis returned a %s, not JSON text", Py_TYPE(r)->tp_name);
    else {
        Py_ssize_t  n;
        const char *text = PyUnicode_AsUTF8AndSize(r, &n);
        if (!text)
            pv_push_python_error(func);
        else if (!(as->result_json = H5allocate_memory((size_t)n + 1, 0)))
            pv_push_error(func, "h5pyvol: out of memory for the analysis result");
        else {
            memcpy(as->result_json, text, (size_t)n + 1);
            ret = 0;
        }
    }
    Py_XDECREF(r);
    pv_leave(gil);
    return ret;
}
