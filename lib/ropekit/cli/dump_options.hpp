#pragma once
// The command-line options of every dump-reading tool (--name, --axes, --theta, --layout,
// --rotary-dim, --bos), added in one place so they read and mean the same everywhere. They fill
// a DumpOptions (dump/dump_reader.hpp), which the library opens the dump with.
#include <CLI/CLI.hpp>

#include "ropekit/dump/dump_reader.hpp"

namespace ropekit {

enum class DumpOptionSet {
    all,
    // --name, --axes, --layout and --rotary-dim only: for a tool that gives --theta another
    // meaning and has no use for --bos (prope-convert).
    names_and_layout,
};

void add_dump_options(CLI::App& app, DumpOptions& options, DumpOptionSet set = DumpOptionSet::all);

}  // namespace ropekit
