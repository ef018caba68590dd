/*
 * null_vol.c: a VOL connector that does nothing, for bench/bench_memory.py.
 *
 * Every callback the bench's metadata calls reach answers at once ("yes, it
 * exists"), so timing h5py's call on a file of this connector measures what
 * issuing that call costs (h5py, HDF5's API layer, the VOL dispatch) with no
 * storage work: the floor that h5pyvol's bridge time is measured above.
 * Compiled by the bench with `h5pyvol config --cflags --libs`; not installed.
 */
#include <hdf5.h>
#include <H5VLconnector.h>

static char the_object; /* every open object is this one address */

static void *null_file_create(const char *name, unsigned flags, hid_t fcpl, hid_t fapl, hid_t dxpl, void **req)
{
    (void)name, (void)flags, (void)fcpl, (void)fapl, (void)dxpl, (void)req;
    return &the_object;
}

static void *null_open(void *obj, const H5VL_loc_params_t *loc, const char *name, hid_t apl, hid_t dxpl,
                       void **req)
{
    (void)obj, (void)loc, (void)name, (void)apl, (void)dxpl, (void)req;
    return &the_object;
}

static herr_t null_close(void *obj, hid_t dxpl, void **req)
{
    (void)obj, (void)dxpl, (void)req;
    return 0;
}

static herr_t null_file_specific(void *obj, H5VL_file_specific_args_t *args, hid_t dxpl, void **req)
{
    (void)obj, (void)args, (void)dxpl, (void)req;
    return 0;
}

static herr_t null_attr_specific(void *obj, const H5VL_loc_params_t *loc, H5VL_attr_specific_args_t *args,
                                 hid_t dxpl, void **req)
{
    (void)obj, (void)loc, (void)dxpl, (void)req;
    if (args->op_type != H5VL_ATTR_EXISTS)
        return -1;
    *args->args.exists.exists = 1;
    return 0;
}

static herr_t null_link_specific(void *obj, const H5VL_loc_params_t *loc, H5VL_link_specific_args_t *args,
                                 hid_t dxpl, void **req)
{
    (void)obj, (void)loc, (void)dxpl, (void)req;
    if (args->op_type != H5VL_LINK_EXISTS)
        return -1;
    *args->args.exists.exists = 1;
    return 0;
}

static const H5VL_class_t null_class; /* defined below; get_conn_cls returns it */

static herr_t null_get_conn_cls(void *obj, H5VL_get_conn_lvl_t lvl, const H5VL_class_t **cls)
{
    (void)obj, (void)lvl;
    *cls = &null_class;
    return 0;
}

static herr_t null_get_cap_flags(const void *info, uint64_t *flags)
{
    (void)info;
    *flags = H5VL_CAP_FLAG_FILE_BASIC | H5VL_CAP_FLAG_GROUP_BASIC | H5VL_CAP_FLAG_DATASET_BASIC |
             H5VL_CAP_FLAG_ATTR_BASIC | H5VL_CAP_FLAG_LINK_BASIC;
    return 0;
}

static herr_t null_opt_query(void *obj, H5VL_subclass_t cls, int opt_type, uint64_t *flags)
{
    (void)obj, (void)cls, (void)opt_type;
    *flags = 0;
    return 0;
}

static void *null_dataset_open(void *obj, const H5VL_loc_params_t *loc, const char *name, hid_t dapl, hid_t dxpl,
                               void **req)
{
    return null_open(obj, loc, name, dapl, dxpl, req);
}

static const H5VL_class_t null_class = {
    .version        = H5VL_VERSION,
    .value          = 4243,
    .name           = "h5pyvol_bench_null",
    .conn_version   = 1,
    .cap_flags      = H5VL_CAP_FLAG_FILE_BASIC | H5VL_CAP_FLAG_GROUP_BASIC | H5VL_CAP_FLAG_DATASET_BASIC |
                 H5VL_CAP_FLAG_ATTR_BASIC | H5VL_CAP_FLAG_LINK_BASIC,
    .file_cls       = {.create = null_file_create, .specific = null_file_specific, .close = null_close},
    .group_cls      = {.open = null_open, .close = null_close},
    .dataset_cls    = {.open = null_dataset_open, .close = null_close},
    .attr_cls       = {.specific = null_attr_specific, .close = null_close},
    .link_cls       = {.specific = null_link_specific},
    .introspect_cls = {null_get_conn_cls, null_get_cap_flags, null_opt_query},
};

/* Registers the connector with the calling process's HDF5; returns its id. */
hid_t null_vol_register(void)
{
    return H5VLregister_connector(&null_class, H5P_DEFAULT);
}
