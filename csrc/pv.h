/*
 * pv.h: what the plugin's C files share.
 *
 * The plugin is a marshaller: each HDF5 VOL callback turns its C arguments
 * into Python objects, calls one function of the Python module
 * h5pyvol.bridge, and turns the result (or the Python exception) back into
 * what HDF5 expects. Every VOL object handed to HDF5 is a PyObject* (a bridge
 * handle) that owns one reference.
 */
#ifndef PV_H
#define PV_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <hdf5.h>
#include <H5VLconnector.h>

#define PV_CONNECTOR_NAME "h5pyvol"
/* Not registered with The HDF Group; chosen above the values in use. */
#define PV_CONNECTOR_VALUE ((H5VL_class_value_t)4242)
#define PV_CONNECTOR_VERSION 1

/* The functions of h5pyvol.bridge that the plugin calls, one per callback
 * (or per get/specific operation). The X-macro keeps the name list and the
 * index enum in one place. */
#define PV_BRIDGE_FUNCTIONS(X)                                                                    \
    X(cap_flags)                                                                                  \
    X(file_create) X(file_open) X(file_close) X(file_get_fapl) X(file_get_fcpl)                   \
    X(file_get_fileno) X(file_get_intent) X(file_get_name) X(file_flush) X(file_reopen)           \
    X(file_is_accessible) X(file_delete) X(file_is_equal) X(same_file) X(file_start_swmr_write)   \
    X(group_create) X(group_open) X(group_close) X(group_get_gcpl) X(group_get_info)              \
    X(group_get_objinfo) X(group_mount) X(group_unmount)                                          \
    X(dataset_create) X(dataset_open) X(dataset_close) X(dataset_read) X(dataset_write)           \
    X(dataset_get_space) X(dataset_get_type) X(dataset_get_dcpl) X(dataset_get_dapl)              \
    X(dataset_get_storage_size) X(dataset_get_space_status) X(dataset_set_extent)                 \
    X(attr_create) X(attr_open) X(attr_close) X(attr_read) X(attr_write) X(attr_get_acpl)         \
    X(attr_get_info) X(attr_get_name) X(attr_get_space) X(attr_get_type)                          \
    X(attr_get_storage_size) X(attr_delete) X(attr_delete_by_idx) X(attr_exists)                  \
    X(attr_iterate) X(attr_rename)                                                                \
    X(datatype_commit) X(datatype_open) X(datatype_close) X(datatype_get_binary)                  \
    X(datatype_get_tcpl)                                                                          \
    X(link_create_hard) X(link_create_soft) X(link_create_ud) X(link_copy) X(link_move)           \
    X(link_get_info) X(link_get_name) X(link_get_val) X(link_delete) X(link_exists)               \
    X(link_iterate)                                                                               \
    X(object_open) X(object_copy) X(object_get_file) X(object_get_name) X(object_get_type)        \
    X(object_get_info) X(object_change_rc) X(object_exists) X(object_lookup) X(object_visit)      \
    X(object_flush) X(object_refresh)                                                             \
    X(blob_put) X(blob_get) X(blob_delete)

#define PV_ENUM_ENTRY(name) PV_FN_##name,
enum pv_fn { PV_BRIDGE_FUNCTIONS(PV_ENUM_ENTRY) PV_FN_COUNT };
#undef PV_ENUM_ENTRY

/* ---- python.c: the interpreter, the GIL and calls into the bridge ---- */

/* 0 once the interpreter runs (started in a C host); -1 with an error pushed. No GIL needed. */
int pv_python_start(const char *func);
/* With the GIL: 0 once h5pyvol's bridge is imported; -1 with an error pushed. */
int pv_bridge_import(const char *func);
int pv_owns_interpreter(void); /* the plugin started the interpreter: a C host */
/* When HDF5 loads the plugin into a running Python (h5py): adds h5pyvol._plugin. */
void pv_python_plugin_loaded(void);
int pv_python_seen(void);      /* the interpreter ran at some point */
unsigned long pv_error_count(void); /* errors pushed so far */

/* module.c: a new h5pyvol._plugin module (its types are added by the caller). */
PyObject *pv_plugin_module_create(void);

/* ---- callback.c: every callback's way into Python and back ---- */

/* Ensures the interpreter runs and the bridge is imported, and takes the GIL.
 * Returns 0 on success; on failure an HDF5 error is pushed, no GIL is held. */
int pv_enter(PyGILState_STATE *gil, const char *func);
void pv_leave(PyGILState_STATE gil);
/* Keeps an exception that is no error (KeyboardInterrupt, SystemExit) to be
 * raised again in the Python caller of the HDF5 call; steals the references. */
void pv_keep_interrupt(PyObject *type, PyObject *value, PyObject *tb);
/* In a C host: SIGINT while Python runs for a callback interrupts it. */
void pv_signals_install(void);
void pv_signals_restore(void);

/* Calls bridge function `fn` with `nargs` arguments. Steals a reference to
 * every argument (NULL arguments mean an earlier allocation failed). Returns a
 * new reference, or NULL with the Python exception already translated onto
 * the HDF5 error stack. */
PyObject *pv_call(enum pv_fn fn, const char *func, Py_ssize_t nargs, ...);

/* Like pv_call, but discards the result: returns 0 or -1. */
herr_t pv_call_void(enum pv_fn fn, const char *func, Py_ssize_t nargs, ...);

/* Calls the bridge's close function `fn` and drops HDF5's reference to obj. */
herr_t pv_close(enum pv_fn fn, void *obj, const char *func);

/* Moves the current Python exception onto the HDF5 error stack. */
void pv_push_python_error(const char *func);
/* 0 if `id` is H5P_DEFAULT or a property list of class `cls`; otherwise
 * pushes "invalid WHAT property list" and returns -1 (HDF5 leaves this
 * check to connectors). */
int pv_check_plist(hid_t id, hid_t cls, const char *what, const char *func);
/* Pushes "native-only KIND operation N is not supported"; returns -1. */
herr_t pv_unsupported(const char *func, const char *kind, int op_type);
/* Pushes a plain message onto the HDF5 error stack. */
void pv_push_error(const char *func, const char *fmt, ...);

/* Argument builders: each returns a new reference (or NULL). */
PyObject *pv_loc(const H5VL_loc_params_t *loc);
PyObject *pv_str(const char *s);
PyObject *pv_int(long long v);
PyObject *pv_uint(unsigned long long v);
PyObject *pv_hid(hid_t id);
/* An access or creation property list id (not a dataset's creation list), or
 * 0 (H5P_DEFAULT) for HDF5's default list of its class, which HDF5 passes for
 * H5P_DEFAULT: the bridge then needs no look into it. */
PyObject *pv_plist(hid_t id);
PyObject *pv_ref(PyObject *o); /* Py_XNewRef with None for NULL */
PyObject *pv_ptr(const void *p);

/* Result readers: return -1 with an HDF5 error pushed on a wrong type. */
int pv_as_hid(PyObject *o, hid_t *out, const char *func);
int pv_as_u64(PyObject *o, uint64_t *out, const char *func);
int pv_as_bool(PyObject *o, hbool_t *out, const char *func);
/* Copies a str/bytes result into an HDF5 name buffer (size/len semantics of
 * H5Iget_name and friends). */
int pv_copy_name(PyObject *o, char *buf, size_t buf_size, size_t *len, const char *func);
int pv_as_token(PyObject *o, H5O_token_t *token, const char *func);

/* With H5PYVOL_TRACE=1: prints that `name` was answered in C for handle
 * `obj` (takes the GIL); otherwise does nothing. */
void pv_trace_answered_in_c(const char *name, void *obj);

/* True once Python has finalized: callbacks then must not touch Python. */
int pv_python_gone(void);

void pv_python_terminate(void);

/* handle.c: h5pyvol._plugin.Handle, whose fields the plugin reads in C. */
int pv_add_handle_type(PyObject *module);
/* The type id H5Dget_type/H5Aget_type copy for a handle, or < 0 if the
 * bridge must answer; needs no GIL. */
hid_t pv_handle_type_id(void *obj);
/* A new dataspace for H5Aget_space, or < 0 if the bridge must answer; needs no GIL. */
hid_t pv_handle_space(void *obj);
/* A new dataspace for H5Dget_space of a dataset handle on the fast data
 * path whose meta is current, or < 0 if the bridge must answer; takes the GIL. */
hid_t pv_handle_dataset_space(void *obj);
/* The fast data path's description of a dataset handle (borrowed), or NULL. */
PyObject *pv_handle_io(PyObject *obj);

/* io.c: h5pyvol._plugin.selection and .io_stats, and the fast data path. */
PyObject *pv_py_selection(PyObject *self, PyObject *arg);
PyObject *pv_py_io_stats(PyObject *self, PyObject *unused);
/* Serves one H5Dread/H5Dwrite (GIL held) when the types are equal and numpy
 * can view both selections with slices: returns 1 with *ret set (errors
 * pushed), or 0 when the bridge's general path must serve it. */
int pv_io_fast(PyObject *h, hid_t mem_type, hid_t mem_space, hid_t file_space, void *buf, int writing,
               herr_t *ret, const char *func);

/* blob.c: the blob callbacks, h5pyvol._plugin.FileBase and .ref_file_type. */
extern const H5VL_blob_class_t pv_blob_cls;
int pv_blob_module_init(PyObject *module);
/* A blob's bytes of any size (malloc'd into *buf); for compat.c's region references. */
herr_t pv_blob_fetch(void *obj, const void *blob_id, void **buf, size_t *size);
PyObject *pv_py_ref_file_type(PyObject *self, PyObject *args);

/* ids.c: ids the Python side holds for itself, not counted as the program's. */
/* Moves the application's reference to `id` to the library: 1 if done, 0 if
 * this HDF5 cannot, -1 on error. */
int   pv_ids_hide(hid_t id);
/* Around importing h5py and the bridge: the datatype ids made meanwhile are hidden. */
void *pv_ids_before_import(void);
void  pv_ids_after_import(void *before);

/* analysis.c: the optional file operation behind H5ASexecute (h5as.h). */
void   pv_analysis_register(void);
void   pv_analysis_unregister(void);
int    pv_analysis_is_op(H5VL_subclass_t cls, int op_type);
herr_t pv_analysis_execute(void *obj, H5VL_optional_args_t *args, const char *func);

/* compat.c: serve h5py's calls to HDF5's deprecated 1.10-era functions. */
void pv_compat_install(void);

/* ---- callback tables, one file per object kind ---- */
extern const H5VL_file_class_t pv_file_cls;
extern const H5VL_group_class_t pv_group_cls;
extern const H5VL_dataset_class_t pv_dataset_cls;
extern const H5VL_attr_class_t pv_attr_cls;
extern const H5VL_datatype_class_t pv_datatype_cls;
extern const H5VL_link_class_t pv_link_cls;
extern const H5VL_object_class_t pv_object_cls;

/* plugin.c */
/* The connector spec (e.g. "memory;key=value") held in a fapl, as a str. */
PyObject *pv_spec_from_fapl(hid_t fapl_id);
/* Gives HDF5 a new id for one of our objects (a new reference to `handle`). */
hid_t pv_register(PyObject *handle, H5I_type_t type);

/* Shared converters for object info and link info results. */
int pv_fill_oinfo(PyObject *t, H5O_info2_t *oinfo, const char *func);
int pv_fill_linfo(PyObject *t, H5L_info2_t *linfo, const char *func);

#endif
