#pragma once
// What a tool hands the one library call that does its work (a tool's main parses the command
// line, makes that call and returns its exit code): where the output goes and whether it may
// replace a file, the provenance to record, and where status lines and the result table go.
// cli/cli.hpp's Tool::context() fills it; the library itself never prints.
#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "ropekit/core/output_path.hpp"

namespace ropekit {

struct RunContext {
    std::string tool;          // the tool's name, recorded in outputs
    std::string command_line;  // argv as a shell would re-read it, recorded in outputs
    std::string output;        // -o: a path, "-" = stdout, empty = not given
    bool force = false;        // --force: replace an existing output (never an input)
    // A status or progress line: stderr, unless --quiet.
    std::function<void(const std::string&)> note = [](const std::string&) {};
    // The tool's table or summary: stdout, or stderr when stdout carries the output.
    std::function<void(const std::string&)> print = [](const std::string&) {};
    // Progress of a long run (`done` of `total` `units`): one line updated in place on a
    // terminal, a plain line every few seconds otherwise, nothing with --quiet.
    std::function<void(std::size_t done, std::size_t total, const std::string& units)> progress =
        [](std::size_t, std::size_t, const std::string&) {};

    // How to write an output that must not replace any of `inputs`.
    WriteOptions write_options(std::vector<std::string> inputs) const {
        return {force, std::move(inputs)};
    }
};

}  // namespace ropekit
