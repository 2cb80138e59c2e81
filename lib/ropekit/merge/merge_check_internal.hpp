#pragma once
// Whether several outputs of one tool can merge: same tool, same options, same axes.
#include <set>
#include <string>
#include <vector>

#include "ropekit/hdf5/h5io.hpp"

namespace ropekit {

struct MergeSchema {
    std::string tool;
    std::set<std::string> additive_attributes;  // root attributes that add (counts)
    std::set<std::string> fixed_datasets;       // axes, compared by value (layer, frequency)
    std::set<std::string> derived_datasets;     // recomputed by the merge, a part may lack them
};

// The `tool` attribute of an output; data_error when it has none.
std::string output_tool(const H5Input& in);

// Every root attribute but provenance and the additive ones is equal, the files have the same
// datasets (derived ones aside), fixed datasets have equal values and the others equal shapes.
// Throws data_error naming the later file, the attribute or dataset, and the first file.
void check_outputs_agree(const std::vector<H5Input>& files, const MergeSchema& schema);

}  // namespace ropekit
