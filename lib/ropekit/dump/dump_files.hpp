#pragma once
// A dump may be several files (shards, e.g. dump-00000-of-00064.h5) read as one dump
// concatenated along batch, in the order given. Their attributes and hooks must agree.
#include <string>
#include <vector>

#include "ropekit/hdf5/h5io.hpp"

namespace ropekit {

// The dump files the command line names: each argument is a path, or @LIST, a text file of paths
// one per line (blank lines and lines starting with # skipped; relative paths as given, from the
// working directory). "-" (stdin) must be the only file. Throws usage_error / data_error.
std::vector<std::string> expand_dump_paths(const std::vector<std::string>& args);

// Opens every file, read-only; DumpReader reads them as one dump.
std::vector<H5Input> open_dump_files(const std::vector<std::string>& paths);

// That the files agree as shards of one dump: the root attributes rope_theta, rope_layout,
// rotary_dim, bos, p and attn_scale, and the same datasets (shapes are checked as they are read).
// A mismatch is a data_error naming the later file, the attribute or dataset, and the first file.
void check_shards_agree(const std::vector<const H5Input*>& shards);

}  // namespace ropekit
