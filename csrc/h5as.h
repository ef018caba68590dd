/*
 * h5as.h: analysis shipping for C programs, through the h5pyvol VOL connector.
 *
 *     char *json = NULL;
 *     if (H5ASexecute(file_id, map_script, combine_script, &json) >= 0) {
 *         puts(json);            // combine's value as JSON
 *         H5free_memory(json);
 *     }
 *
 * `map_script` is Python source defining map(block): it runs once per shard
 * of the first dataset it references (block["/path"]), next to the data;
 * `combine_script` (or NULL) defines combine(list of map results), run once.
 * The file must be served by h5pyvol (HDF5_VOL_CONNECTOR="h5pyvol ...").
 * Errors (a map that raised, with its shard and traceback; a file of another
 * connector) are on HDF5's error stack. The engine is the environment's
 * H5PYVOL_ANALYSIS_ENGINE (serial, processes: the default, mpi, dask).
 *
 * Compile with: cc prog.c $(h5pyvol config --cflags --libs)
 * The call is an HDF5 optional VOL operation that the plugin registers
 * under H5AS_EXECUTE_OP_NAME; this header needs only libhdf5.
 */
#ifndef H5AS_H
#define H5AS_H

#include <string.h>

#include <hdf5.h>
#include <H5VLconnector.h>

#define H5AS_EXECUTE_OP_NAME "h5pyvol.analysis.execute"

/* The arguments the plugin's file optional callback receives. */
typedef struct H5AS_execute_args_t {
    hid_t       file_id;
    const char *map_script;
    const char *combine_script; /* may be NULL: the list of map results */
    char       *result_json;    /* set by the connector; free with H5free_memory */
} H5AS_execute_args_t;

static inline herr_t H5ASexecute(hid_t file_id, const char *map_script, const char *combine_script,
                                 char **result_json)
{
    H5VL_optional_args_t args;
    H5AS_execute_args_t  as;
    char                 conn[16] = "";
    int                  op       = -1;
    herr_t               found    = -1;

    if (!map_script || !result_json) {
        H5Epush2(H5E_DEFAULT, __FILE__, "H5ASexecute", __LINE__, H5E_ERR_CLS, H5E_ARGS, H5E_BADVALUE,
                 "H5ASexecute: map_script and result_json may not be NULL");
        return -1;
    }
    *result_json = NULL;
    if (H5VLget_connector_name(file_id, conn, sizeof conn) < 0)
        return -1;
    if (strcmp(conn, "h5pyvol") != 0) {
        H5Epush2(H5E_DEFAULT, __FILE__, "H5ASexecute", __LINE__, H5E_ERR_CLS, H5E_VOL, H5E_UNSUPPORTED,
                 "H5ASexecute: the file is served by the '%s' VOL connector; analysis shipping needs h5pyvol "
                 "(HDF5_VOL_CONNECTOR=\"h5pyvol ...\")", conn);
        return -1;
    }
    H5E_BEGIN_TRY
    {
        found = H5VLfind_opt_operation(H5VL_SUBCLS_FILE, H5AS_EXECUTE_OP_NAME, &op);
    }
    H5E_END_TRY
    if (found < 0) {
        H5Epush2(H5E_DEFAULT, __FILE__, "H5ASexecute", __LINE__, H5E_ERR_CLS, H5E_VOL, H5E_NOTFOUND,
                 "H5ASexecute: this h5pyvol plugin offers no analysis operation (too old?)");
        return -1;
    }
    as.file_id        = file_id;
    as.map_script     = map_script;
    as.combine_script = combine_script;
    as.result_json    = NULL;
    args.op_type      = op;
    args.args         = &as;
    if (H5VLfile_optional_op(file_id, &args, H5P_DEFAULT, H5ES_NONE) < 0)
        return -1;
    *result_json = as.result_json;
    return 0;
}

#endif
