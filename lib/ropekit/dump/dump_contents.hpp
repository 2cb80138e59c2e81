#pragma once
// What a dump holds, for the error when no dataset matches the --name templates: its first few
// dataset paths with their shapes, and a --name value that would match them (TransformerLens
// names in nested groups such as blocks/0/attn/hook_q, Hugging Face module names such as
// model.layers.0.self_attn.q_proj).
#include <string>
#include <vector>

#include "ropekit/dump/dump_schema.hpp"
#include "ropekit/hdf5/h5io.hpp"

namespace ropekit {

// "; the file has a [2, 8], b [4] (+3 more); try --name 'blocks/{layer}/attn/{hook}'", or the
// list alone when no template fits, or "; the file has no datasets". `hooks`: those the tool
// reads, in order of preference.
std::string dump_contents_hint(const H5Input& in, const std::vector<Hook>& hooks);

// The --name values that would make `names` (dataset paths) match `hooks`; empty if none.
std::vector<std::string> suggest_name_templates(const std::vector<std::string>& names,
                                                const std::vector<Hook>& hooks);

}  // namespace ropekit
