#pragma once
// find-positional-heads as one call: what its command line asks (PositionalHeadsCommand) is read
// from the dump, computed (positional_heads.hpp), printed as a table and optionally written as
// HDF5 and SVG figures.
#include <string>
#include <vector>

#include "ropekit/analysis/positional_heads.hpp"
#include "ropekit/core/work_share.hpp"
#include "ropekit/core/enum_names.hpp"
#include "ropekit/core/run_context.hpp"
#include "ropekit/dump/dump_reader.hpp"

namespace ropekit {

enum class HeadsTableFormat { tsv, json };
inline constexpr EnumNames<HeadsTableFormat, 2> kHeadsTableFormatNames{
    {{HeadsTableFormat::tsv, "tsv"}, {HeadsTableFormat::json, "json"}}};

struct PositionalHeadsCommand {
    std::vector<std::string> inputs;  // the dump: files (shards), @LIST files of paths, or "-"
    std::string from = "auto";        // auto (pattern if the dump has them, else qk) | pattern | qk
    std::string scale = "auto";       // auto | sqrt | none (logit_scale_choice)
    std::string format = "tsv";       // tsv | json
    std::string layers = "all";       // index spec over positional_head_layers()
    std::string plot;                 // figure path prefix; empty = no figures
    PositionalOptions options;        // epsilon, max_offset, exclusions; the rest from the above
    DumpOptions dump;
};

// Refuses bad options (usage_error) and unwritable outputs before reading anything; writes
// context.output when given, PREFIX-mass.svg and PREFIX-L{l}H{h}.svg per positional head; prints
// the table (heads_table_tsv / heads_table_json). Under a WorkShare of several parts, each reads
// its share of the sequences and only part 0, with every part's statistics added in part order,
// writes and prints.
void run_find_positional_heads(const PositionalHeadsCommand& command, const RunContext& context,
                               const WorkShare& share = {});

}  // namespace ropekit
