#pragma once
// Hostile HDF5 stays inside its file: an input may not make us read other files (external
// raw-data storage, external links, virtual datasets whose sources are other files) nor load
// code (filters that exist only as plugins in HDF5_PLUGIN_PATH), unless the user allows it
// (allow_external_hdf5, --allow-external). Private to the hdf5 module.
#include <hdf5.h>

#include <string>

namespace ropekit {

bool external_hdf5_allowed();

// Walks every link and dataset of `file` (without following external or soft links) and throws
// data_error "file_name: object: what reaches outside" for the first one that would read another
// file or need a filter plugin. Turns HDF5's plugin loading off first.
void check_self_contained(hid_t file, const std::string& file_name);

}  // namespace ropekit
