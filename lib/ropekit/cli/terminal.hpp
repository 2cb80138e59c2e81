#pragma once
// Terminal manners of every tool: HDF5 is not written to a terminal (it would print binary on the
// screen), and a tool that reads '-' from a terminal says so instead of waiting silently.
#include <string>

#include <CLI/CLI.hpp>

namespace ropekit {

// The usage error for `-o -` when standard output is a terminal and the output is binary; "" when
// the output may go there.
std::string terminal_output_refusal(const std::string& output, bool text_output);

// True when a value of an option other than -o is '-' or '-:...' (standard input) and standard
// input is a terminal.
bool reads_terminal_input(const CLI::App& app);

// The note for that case.
inline constexpr const char* kReadingTerminalNote =
    "reading the dump from standard input… (pipe one in, e.g. make-demo-dump -o - | freq-norms -, "
    "or "
    "end with Ctrl-D)";

}  // namespace ropekit
