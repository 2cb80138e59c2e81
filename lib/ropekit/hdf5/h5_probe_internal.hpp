#pragma once
// libhdf5 1.10 is not hardened against corrupt files: some crash it or make it loop forever
// (tests/fuzz-known-libhdf5/). Before a tool touches an input, a forked child opens it and walks
// everything the tools read; the parent opens the file only if the child survived. Private to
// the hdf5 module.
#include <string>

namespace ropekit {

// Runs the walk in a child process that reports each object it reaches through a pipe. Throws
// data_error naming `name` (and the object the child had reached) when the child crashes or
// makes no progress for kProbeStallSeconds. Returns normally when the walk finished, and also
// when no child could be started or may not be (under an address-space limit): the file is then
// read unprobed.
void probe_in_child(const std::string& file, const std::string& name);

inline constexpr int kProbeStallSeconds = 3;

}  // namespace ropekit
