#pragma once
// prope-convert as one call: the conversion its command line asks for (PropeConvertCommand) is
// checked, the input kind detected, and the input converted (prope_convert.hpp).
#include <optional>
#include <string>

#include "ropekit/core/run_context.hpp"
#include "ropekit/dump/dump_reader.hpp"

namespace ropekit {

struct PropeConvertCommand {
    std::string input;                // checkpoint directory, .gguf or .h5 file; '-' = HDF5 stdin
    double p = 1.0;                   // fraction of frequencies kept, in [0, 1]
    std::optional<double> theta;      // rebase to this base first (> 1)
    bool reverse = false;             // drop the highest frequencies instead
    std::string encoding = "llama3";  // Hugging Face config encoding (prope_encoding.hpp)
    bool copy = false;                // copy unchanged checkpoint files instead of hard-linking
    std::string input_kind;           // hf | gguf | h5; empty = detect
    DumpOptions dump;                 // HDF5 dumps: names, axes, layout, rotary_dim
};

// Notes what was kept and changed (ConvertReport::lines).
void run_prope_convert(const PropeConvertCommand& command, const RunContext& context);

}  // namespace ropekit
