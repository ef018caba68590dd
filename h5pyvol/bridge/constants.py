"""HDF5's constants that the bridge uses (stable parts of its public ABI),
and the capability flags each connector boolean stands for."""

from __future__ import annotations

H5I_FILE, H5I_GROUP, H5I_DATATYPE, H5I_DATASET, H5I_ATTR = 1, 2, 3, 5, 7
H5O_TYPE_GROUP, H5O_TYPE_DATASET, H5O_TYPE_NAMED_DATATYPE = 0, 1, 2
H5L_TYPE_HARD, H5L_TYPE_SOFT, H5L_TYPE_EXTERNAL = 0, 1, 64
H5F_ACC_RDWR, H5F_ACC_TRUNC, H5F_ACC_EXCL = 0x1, 0x2, 0x4
H5F_ACC_SWMR_WRITE, H5F_ACC_SWMR_READ = 0x20, 0x40
H5F_ACC_DEFAULT = 0xFFFF  # H5Pset_elink_acc_flags: the linking file's intent
H5_INDEX_NAME, H5_INDEX_CRT_ORDER = 0, 1
H5_ITER_DEC = 1
H5O_INFO_TIME, H5O_INFO_NUM_ATTRS = 0x2, 0x4
H5G_STORAGE_TYPE_COMPACT = 1
H5G_LINK, H5G_UDLINK = 3, 4
H5T_CSET_ASCII, H5T_CSET_UTF8 = 0, 1
H5D_SPACE_STATUS_NOT_ALLOCATED, H5D_SPACE_STATUS_ALLOCATED = 0, 2
MAX_SOFT_LINK_DEPTH = 16  # HDF5's default H5Pset_nlinks

CAP_FLAGS = {
    "always": 0x80 | 0x100 | 0x200 | 0x400 | 0x20 | 0x40 | 0x800 | 0x1000 | 0x8000 | 0x10000
    | 0x1000000 | 0x4000000 | 0x8000000 | 0x10000000 | 0x40000000
    | 0x400000000,  # MOUNT: the bridge mounts files of any connector
    "supports_attributes": 0x8 | 0x10,
    "supports_soft_links": 0x80000000,
    "supports_external_links": 0x20000000,
    "supports_user_links": 0x100000000,
    "supports_creation_order": 0x800000,
    "supports_committed_datatypes": 0x400000,
    "supports_storage_size": 0x2000000,
    "supports_fill_values": 0x1000000000,
    "supports_filters": 0x800000000,
    "supports_object_times": 0x200000000,  # TRACK_TIMES
    "supports_references": 0x20000 | 0x40000 | 0x80000 | 0x100000 | 0x200000,  # REF_*, OBJ/REG/ATTR_REF
}


# The object type (H5O_type_t) of each kind of id.
OBJ_TYPE = {H5I_GROUP: H5O_TYPE_GROUP, H5I_DATASET: H5O_TYPE_DATASET, H5I_DATATYPE: H5O_TYPE_NAMED_DATATYPE}
