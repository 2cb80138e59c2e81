#include "ropekit/cli/terminal.hpp"

#include <unistd.h>

namespace ropekit {

std::string terminal_output_refusal(const std::string& output, bool text_output) {
    if (output != "-" || text_output || !::isatty(STDOUT_FILENO)) return "";
    return "-o -: standard output is a terminal, and the output is HDF5 (binary): redirect it "
           "(-o - > out.h5) or pipe it into the next tool (-o - | freq-norms -)";
}

bool reads_terminal_input(const CLI::App& app) {
    if (!::isatty(STDIN_FILENO)) return false;
    for (const CLI::Option* option : app.get_options()) {
        if (option->check_lname("output")) continue;
        for (const std::string& value : option->results()) {
            if (value == "-" || value.rfind("-:", 0) == 0) return true;
        }
    }
    return false;
}

}  // namespace ropekit
