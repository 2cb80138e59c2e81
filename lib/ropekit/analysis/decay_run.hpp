#pragma once
// rope-decay as one call: the curve its command line asks for (DecayCommand) is computed
// (decay.hpp), written as HDF5 and optionally SVG, and with --check tested against
// Proposition 3.2.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "ropekit/core/work_share.hpp"
#include "ropekit/core/run_context.hpp"

namespace ropekit {

struct DecayCommand {
    std::string mode = "ones";            // ones | gaussian | repeated-gaussian | file
    std::optional<std::size_t> head_dim;  // default 256, in file mode the query's last axis
    std::optional<double> theta;          // default 1e4, in file mode the file's rope_theta
    std::optional<double> p;              // default 1 (RoPE), in file mode the file's p
    std::int64_t max_offset = 5000;
    std::string offsets;      // instead of 0..max_offset: "0,1,10" or "0-5000:10"
    std::size_t samples = 0;  // 0 = the mode's default
    std::uint64_t seed = 0;
    std::size_t first_sample = 0;           // gaussian mode: the first pair's index
    std::string input, query, key, layout;  // file mode
    // file mode: the dump layer whose layer_rope_inv_freq row applies (default: L of the
    // query's blocks.L. name)
    std::optional<std::size_t> layer;
    std::string plot;     // SVG path; empty = none
    bool check = false;   // test Proposition 3.2
    double alpha = 1e-3;  // --check's family-wise false-alarm rate
};

// Writes context.output (and the plot) whatever the check finds, then throws
// check_failed_error (exit 3) when --check ran and the curve decays. Under a WorkShare of several
// parts (mpirun), the parts split the pairs (compute_decay) and only part 0 writes.
void run_rope_decay(const DecayCommand& command, const RunContext& context,
                    const WorkShare& share = {});

}  // namespace ropekit
