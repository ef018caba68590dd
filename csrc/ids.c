/*
 * ids.c: datatype ids that the plugin's Python side holds for itself.
 *
 * H5Fget_obj_count(H5F_OBJ_ALL, ...) and H5Fget_obj_ids count every id that
 * the application holds a reference to. The datatype ids h5py makes when the
 * plugin imports it (conversion tables kept for the life of the process) and
 * those the bridge keeps for each open dataset and attribute are not the
 * application's: native HDF5 registers an open dataset's type without an
 * application reference (H5D__init_type), so programs do not see it there.
 * HDF5's public API cannot move a reference from the application to the
 * library, so this looks up H5I_inc_ref, which libhdf5 1.14 exports. Where it
 * is missing, ids keep their application reference and are counted; nothing
 * else changes.
 *
 * A hidden id is still valid for every HDF5 call; H5Iis_valid says no (it
 * reports application ids only), so h5py must hold it locked. Hidden ids
 * are kept for the life of the process, one per distinct type (the bridge
 * shares them): closing them at run time garbled error stacks in testing.
 */
#define _GNU_SOURCE
#include "pv.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <stdlib.h>

typedef int (*inc_ref_fn)(hid_t id, bool app_ref);

static inc_ref_fn library_inc_ref(void)
{
    static int        looked;
    static inc_ref_fn fn;
    Dl_info           info;
    void             *lib;

    if (looked)
        return fn;
    looked = 1;
    /* The libhdf5 this plugin links (HDF5 loads plugins RTLD_LOCAL, so ask that very library). */
    if (dladdr((void *)&H5Iinc_ref, &info) && info.dli_fname &&
        (lib = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD))) {
        fn = (inc_ref_fn)dlsym(lib, "H5I_inc_ref");
        dlclose(lib); /* RTLD_NOLOAD took a reference; the library stays loaded */
    }
    return fn;
}

int pv_ids_hide(hid_t id)
{
    inc_ref_fn inc_ref = library_inc_ref();

    if (!inc_ref || H5Iget_ref(id) < 1)
        return 0;
    if (inc_ref(id, false) < 0)
        return -1;
    /* Drops one count and the application's reference: the library's stays. */
    if (H5Idec_ref(id) < 0)
        return -1;
    return 1;
}

/* The datatype ids the application holds now (a malloc'd array). */
static hid_t *app_datatype_ids(size_t *n)
{
    ssize_t count;
    hid_t  *ids;

    *n    = 0;
    count = H5Fget_obj_count((hid_t)H5F_OBJ_ALL, H5F_OBJ_DATATYPE);
    if (count <= 0)
        return NULL;
    if (!(ids = malloc((size_t)count * sizeof *ids)))
        return NULL;
    count = H5Fget_obj_ids((hid_t)H5F_OBJ_ALL, H5F_OBJ_DATATYPE, (size_t)count, ids);
    *n    = count > 0 ? (size_t)count : 0;
    return ids;
}

static int listed(hid_t id, const hid_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return 1;
    return 0;
}

void *pv_ids_before_import(void)
{
    size_t *snapshot;
    size_t  n;
    hid_t  *ids = app_datatype_ids(&n);

    /* One block: the count, then the ids. */
    if (!(snapshot = malloc(sizeof(size_t) + n * sizeof(hid_t)))) {
        free(ids);
        return NULL;
    }
    snapshot[0] = n;
    for (size_t i = 0; i < n; i++)
        ((hid_t *)(snapshot + 1))[i] = ids[i];
    free(ids);
    return snapshot;
}

void pv_ids_after_import(void *before)
{
    size_t *snapshot = before;
    size_t  n;
    hid_t  *ids;

    if (!snapshot)
        return;
    ids = app_datatype_ids(&n);
    /* h5py never closes the ids it made while importing (it locks them), so
     * they become the library's; those the program held before stay its own. */
    for (size_t i = 0; i < n; i++)
        if (!listed(ids[i], (const hid_t *)(snapshot + 1), snapshot[0]))
            pv_ids_hide(ids[i]);
    free(ids);
    free(snapshot);
}
