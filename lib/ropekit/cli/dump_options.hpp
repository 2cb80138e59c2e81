#pragma once
// The command-line options every dump-reading tool shares (--name, --axes, --theta, --layout,
// --rotary-dim, --bos), added in one place so they read and mean the same everywhere.
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "ropekit/dump/dump_reader.hpp"

namespace ropekit {

struct DumpCliOptions {
    std::vector<std::string> names;
    std::string axes = "batch,pos,head,dim";
    double theta = 0;
    std::string layout;
    std::size_t rotary_dim = 0;
    int bos = -1;

    void add_to(CLI::App& app);
    // `primary`: the hook a plain --name TEMPLATE (without {hook}) names.
    DumpReader open(const H5Input& in, std::optional<Hook> primary) const;
};

}  // namespace ropekit
