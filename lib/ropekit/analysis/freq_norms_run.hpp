#pragma once
// freq-norms as one call: what its command line asks (FreqNormsCommand) is read from the dump,
// computed (freq_norms.hpp), written as HDF5 and SVG figures, and summarised per head.
#include <string>
#include <vector>

#include "ropekit/analysis/freq_norms.hpp"
#include "ropekit/core/work_share.hpp"
#include "ropekit/core/enum_names.hpp"
#include "ropekit/core/run_context.hpp"
#include "ropekit/dump/dump_reader.hpp"

namespace ropekit {

enum class NormedTensors { q, k, both };
inline constexpr EnumNames<NormedTensors, 3> kNormedTensorNames{
    {{NormedTensors::q, "q"}, {NormedTensors::k, "k"}, {NormedTensors::both, "both"}}};

struct FreqNormsCommand {
    std::vector<std::string> inputs;  // the dump: files (shards), @LIST files of paths, or "-"
    std::string tensor = "both";      // q | k | both
    std::string layers = "all";       // index spec over freq_norms_layers() (core/index_spec.hpp)
    std::string plot;                 // figure path prefix; empty = no figures
    FreqNormsOptions options;         // exclude_bos, band_ratio; layers come from `layers`
    DumpOptions dump;
};

// Refuses bad options (usage_error) and unwritable outputs before reading anything; writes
// context.output when given, then PREFIX-{q,k}-layers.svg and PREFIX-{q,k}-layer{L}.svg; prints the
// per-head summary (freq_norms_summary). Under a WorkShare of several parts, each reads its share
// of the sequences and only part 0, with every part's statistics added in part order, writes.
void run_freq_norms(const FreqNormsCommand& command, const RunContext& context,
                    const WorkShare& share = {});

}  // namespace ropekit
