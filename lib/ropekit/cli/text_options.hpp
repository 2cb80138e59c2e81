#pragma once
// rope-dump's --text, --stride and --whole, added in one place.
#include <CLI/CLI.hpp>

#include "ropekit/tokenize/token_stream.hpp"

namespace ropekit {

// Adds the options (excluding --tokens, --ids and --sample); returns the --text option.
CLI::Option* add_text_options(CLI::App& app, TextSource& source);

}  // namespace ropekit
